//! A grid of panels (images, saliency maps, overlays) with titles, a figure
//! title and colour bars: the layout behind all of the lab's figures. The
//! layout is computed once ([`Layout`]); each panel's pixels are made at its
//! own resolution and scaled into its cell by `image::imageops`; plotters
//! draws the text.

use image::imageops::{self, FilterType};
use image::{ImageBuffer, RgbImage};
use ndarray::ArrayView2;

use super::colormap::{normalise, value_range, Colormap};
use super::figure::{Figure, PanelInfo};
use super::panel::Panel;
use super::text::{draw_labels, format_tick, Label};
use crate::error::{Error, Result};

/// How the maps of a grid turn values into colours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Each map from its own minimum to its maximum (matplotlib's default),
    /// symmetric around zero for a diverging colour map.
    PerMap,
    /// One range for all maps of the grid, so they can be compared.
    Shared,
    /// One range per column (a column per method, say), with one colour bar
    /// beside each column.
    PerColumn,
    /// A fixed range `(low, high)`.
    Fixed(f32, f32),
}

/// A grid of panels, rendered with [`Grid::render`].
///
/// ```
/// use saliency_lab::plot::{Colormap, Grid, Panel, Scale};
/// let map = tch::Tensor::arange(16, (tch::Kind::Float, tch::Device::Cpu)).view([4, 4]);
/// let fig = Grid::new(1, 2)
///     .with_panel(0, 0, Panel::map(&map, Colormap::Hot, "hot")?)
///     .with_panel(0, 1, Panel::map(&map, Colormap::Gray, "gray")?)
///     .with_scale(Scale::Shared)
///     .with_colorbar(true)
///     .render()?;
/// // The first map's top-left value is the shared minimum: hot(0), matplotlib's (0.0416, 0, 0).
/// assert_eq!(fig.pixel(10, 40)?, [10, 0, 0]);
/// # Ok::<(), saliency_lab::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Grid {
    rows: usize,
    cols: usize,
    panels: Vec<Panel>,
    suptitle: Option<String>,
    cell: u32,
    scale: Scale,
    colorbar: bool,
}

/// Layout constants, in pixels.
const PAD: u32 = 10;
const GAP: u32 = 14;
const TITLE_H: u32 = 26;
const SUPTITLE_H: u32 = 40;
const BAR_W: u32 = 14;
const BAR_LABELS_W: u32 = 72;
const TITLE_FONT: f64 = 16.0;

impl Grid {
    /// An empty `rows x cols` grid with 224-pixel cells.
    #[must_use]
    pub fn new(rows: usize, cols: usize) -> Self {
        Grid {
            rows,
            cols,
            panels: vec![Panel::Empty; rows * cols],
            suptitle: None,
            cell: 224,
            scale: Scale::PerMap,
            colorbar: false,
        }
    }

    /// Puts `panel` at row `r`, column `c` (ignored outside the grid).
    #[must_use]
    pub fn with_panel(mut self, r: usize, c: usize, panel: Panel) -> Self {
        if r < self.rows && c < self.cols {
            self.panels[r * self.cols + c] = panel;
        }
        self
    }

    /// A title over the whole figure.
    #[must_use]
    pub fn with_suptitle(mut self, title: impl Into<String>) -> Self {
        self.suptitle = Some(title.into());
        self
    }

    /// The side of each cell in pixels (default 224, the lab's image size).
    #[must_use]
    pub fn with_cell_size(mut self, px: u32) -> Self {
        self.cell = px.max(32);
        self
    }

    /// How values map to colours (default [`Scale::PerMap`]).
    #[must_use]
    pub fn with_scale(mut self, scale: Scale) -> Self {
        self.scale = scale;
        self
    }

    /// Whether to draw colour bars in the maps' units: one per map with
    /// [`Scale::PerMap`], one for the whole figure otherwise.
    #[must_use]
    pub fn with_colorbar(mut self, on: bool) -> Self {
        self.colorbar = on;
        self
    }

    fn range_of(&self, map: ArrayView2<'_, f32>, cmap: Colormap, col: usize) -> (f32, f32) {
        match self.scale {
            Scale::PerColumn => value_range(
                (0..self.rows)
                    .filter_map(|r| self.panels[r * self.cols + col].values().map(|v| v.0)),
                cmap,
            ),
            Scale::Fixed(lo, hi) => (lo, hi),
            Scale::PerMap => value_range(std::iter::once(map), cmap),
            Scale::Shared => value_range(
                self.panels.iter().filter_map(|p| p.values().map(|v| v.0)),
                cmap,
            ),
        }
    }

    /// Draws the grid.
    ///
    /// # Errors
    /// [`Error::Parameter`] for an empty grid, [`Error::Plot`] if drawing
    /// text fails.
    pub fn render(&self) -> Result<Figure> {
        if self.rows == 0 || self.cols == 0 {
            return Err(Error::parameter(
                "Grid",
                "rows x cols",
                format!("{}x{}", self.rows, self.cols),
                "must be at least 1x1",
            ));
        }
        let layout = Layout::of(self);
        let mut fig = Figure::blank(layout.width, layout.height);
        fig.grid = Some((self.rows, self.cols));
        let mut labels = Vec::new();
        if let Some(s) = &self.suptitle {
            let w = layout.width;
            labels.push(Label::centred(s, w / 2, PAD + 6, 22.0, w - 2 * PAD, true));
        }
        // Each map's value range and colour map, once, for its pixels and
        // its colour bar.
        let ranges: Vec<Option<((f32, f32), Colormap)>> = (self.panels.iter().enumerate())
            .map(|(i, panel)| {
                let (map, cmap) = panel.values()?;
                Some((self.range_of(map, cmap, i % self.cols), cmap))
            })
            .collect();
        for (i, panel) in self.panels.iter().enumerate() {
            let (row, col) = (i / self.cols, i % self.cols);
            let (x, y) = layout.picture(row, col);
            fig.panels.push(PanelInfo {
                row,
                col,
                kind: panel.kind(),
                title: panel.title().to_string(),
                x,
                y,
                size: self.cell,
            });
            if !panel.title().is_empty() {
                let (cx, ty) = (x + self.cell / 2, y - TITLE_H + 4);
                let max_w = self.cell + GAP;
                labels.push(Label::centred(
                    panel.title(),
                    cx,
                    ty,
                    TITLE_FONT,
                    max_w,
                    false,
                ));
            }
            let range = ranges[i].map_or((0.0, 1.0), |(range, _)| range);
            if let Some(pixels) = panel.pixels(range) {
                paste_fitted(&mut fig, &pixels, x, y, self.cell);
            }
        }
        for bar in self.bars(&layout, &ranges) {
            labels.extend(bar.draw(&mut fig));
        }
        draw_labels(&mut fig, &labels)?;
        Ok(fig)
    }

    /// The colour bars, in the maps' units: one beside each map
    /// ([`Scale::PerMap`]), one beside each column's maps from its first to
    /// its last ([`Scale::PerColumn`]), or one for the whole figure.
    /// `ranges`: each panel's, where it has a map.
    fn bars(&self, layout: &Layout, ranges: &[Option<((f32, f32), Colormap)>]) -> Vec<ColourBar> {
        // Each map's row, column, range and colour map, row by row.
        let maps: Vec<_> = (ranges.iter().enumerate())
            .filter_map(|(i, r)| {
                let (range, cmap) = (*r)?;
                Some((i / self.cols, i % self.cols, range, cmap))
            })
            .collect();
        let beside = |row, col, height, range, cmap| {
            let (x, y) = layout.picture(row, col);
            ColourBar {
                x: x + self.cell + 6,
                y,
                height,
                cmap,
                range,
            }
        };
        match layout.bars {
            Bars::None => Vec::new(),
            Bars::PerMap => maps
                .iter()
                .map(|&(row, col, range, cmap)| beside(row, col, self.cell, range, cmap))
                .collect(),
            Bars::PerColumn => (0..self.cols)
                .filter_map(|col| {
                    let mut rows = maps.iter().filter(|m| m.1 == col);
                    let &(first, _, range, cmap) = rows.next()?;
                    let last = rows.next_back().map_or(first, |m| m.0);
                    let top = layout.picture(first, col).1;
                    let height = layout.picture(last, col).1 + self.cell - top;
                    Some(beside(first, col, height, range, cmap))
                })
                .collect(),
            Bars::Shared => maps
                .first()
                .map(|&(_, _, range, cmap)| ColourBar {
                    x: layout.width - PAD - BAR_LABELS_W - BAR_W,
                    y: layout.top + TITLE_H,
                    height: layout.height - layout.top - TITLE_H - PAD,
                    cmap,
                    range,
                })
                .into_iter()
                .collect(),
        }
    }
}

/// Which colour bars a grid has.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bars {
    None,
    PerMap,
    PerColumn,
    Shared,
}

/// Where everything of a grid goes, in pixels, computed once.
#[derive(Debug)]
struct Layout {
    width: u32,
    height: u32,
    /// The first row's top (below the figure's title).
    top: u32,
    /// A column: its cell and, with per-map or per-column bars, its bar.
    col_w: u32,
    /// A row: its titles and its cell.
    row_h: u32,
    bars: Bars,
}

impl Layout {
    fn of(grid: &Grid) -> Self {
        let bars = match (grid.colorbar, grid.scale) {
            (false, _) => Bars::None,
            (true, Scale::PerMap) => Bars::PerMap,
            (true, Scale::PerColumn) => Bars::PerColumn,
            (true, _) => Bars::Shared,
        };
        let beside = BAR_W + BAR_LABELS_W;
        let col_w = grid.cell
            + if matches!(bars, Bars::PerMap | Bars::PerColumn) {
                beside
            } else {
                0
            };
        let top = PAD
            + if grid.suptitle.is_some() {
                SUPTITLE_H
            } else {
                0
            };
        let row_h = TITLE_H + grid.cell;
        let (rows, cols) = (grid.rows as u32, grid.cols as u32);
        let shared_bar = if bars == Bars::Shared {
            GAP + beside
        } else {
            0
        };
        Layout {
            width: 2 * PAD + cols * col_w + (cols - 1) * GAP + shared_bar,
            height: top + rows * row_h + (rows - 1) * GAP / 2 + PAD,
            top,
            col_w,
            row_h,
            bars,
        }
    }

    /// The top-left corner of a cell's picture (its title is above it).
    fn picture(&self, row: usize, col: usize) -> (u32, u32) {
        (
            PAD + col as u32 * (self.col_w + GAP),
            self.top + row as u32 * (self.row_h + GAP / 2) + TITLE_H,
        )
    }
}

/// Scales `pixels` into the `cell x cell` box at `(x, y)` by nearest
/// neighbour (imshow's look), keeping the aspect ratio, centred.
fn paste_fitted(fig: &mut Figure, pixels: &RgbImage, x: u32, y: u32, cell: u32) {
    let (w, h) = pixels.dimensions();
    if w == 0 || h == 0 {
        return;
    }
    let scale = f64::from(cell) / f64::from(w.max(h));
    let fitted = |n: u32| ((f64::from(n) * scale).round() as u32).clamp(1, cell);
    let (dw, dh) = (fitted(w), fitted(h));
    let scaled = imageops::resize(pixels, dw, dh, FilterType::Nearest);
    let (ox, oy) = (x + (cell - dw) / 2, y + (cell - dh) / 2);
    imageops::replace(&mut fig.canvas(), &scaled, i64::from(ox), i64::from(oy));
}

/// A vertical colour bar, high values at the top, with three ticks.
struct ColourBar {
    x: u32,
    y: u32,
    height: u32,
    cmap: Colormap,
    range: (f32, f32),
}

impl ColourBar {
    /// Draws the bar and its tick marks; returns the ticks' labels.
    fn draw(&self, fig: &mut Figure) -> Vec<Label> {
        let (h, (lo, hi)) = (self.height, self.range);
        let bottom = f64::from((h - 1).max(1));
        let bar = ImageBuffer::from_fn(BAR_W, h, |_, y| {
            image::Rgb(self.cmap.color(1.0 - f64::from(y) / bottom))
        });
        let mut canvas = fig.canvas();
        imageops::replace(&mut canvas, &bar, self.x.into(), self.y.into());
        let tick = RgbImage::from_pixel(4, 1, image::Rgb([0, 0, 0]));
        let middle = if self.cmap.is_diverging() {
            0.0
        } else {
            (lo + hi) / 2.0
        };
        [lo, middle, hi]
            .into_iter()
            .map(|v| {
                let t = normalise(v, self.range);
                let y = self.y + ((1.0 - t) * f64::from(h - 1)) as u32;
                imageops::replace(&mut canvas, &tick, (self.x + BAR_W).into(), y.into());
                Label {
                    text: format_tick(v),
                    x: self.x + BAR_W + 6,
                    y: y.saturating_sub(6),
                    size: 12.0,
                    max_w: BAR_LABELS_W - 8,
                    centre: false,
                    bold: false,
                }
            })
            .collect()
    }
}
