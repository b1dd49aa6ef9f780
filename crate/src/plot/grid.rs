//! A grid of panels (images, saliency maps, overlays) with titles, a figure
//! title and colour bars: the layout behind all of the lab's figures.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tch::Tensor;

use super::colormap::Colormap;
use super::figure::{Figure, PanelInfo, PanelKind};
use crate::error::{Error, Result};
use crate::transforms::AsImage;

/// One cell of a [`Grid`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Panel {
    /// An RGB image `[H, W, 3]`.
    Image {
        /// The pixels.
        image: Array3<u8>,
        /// The title above it.
        title: String,
    },
    /// A 2-D map `[H, W]` drawn with a colour map.
    Map {
        /// The values.
        map: Array2<f32>,
        /// How values become colours.
        cmap: Colormap,
        /// The title above it.
        title: String,
    },
    /// An image with a map blended over it.
    Overlay {
        /// The image, `[H, W, 3]`.
        image: Array3<u8>,
        /// The map, `[H, W]`.
        map: Array2<f32>,
        /// The map's colour map.
        cmap: Colormap,
        /// The map's weight, `0..=1`.
        alpha: f32,
        /// The title above it.
        title: String,
    },
    /// Nothing.
    Empty,
}

impl Panel {
    /// An image panel.
    #[must_use]
    pub fn image(image: impl AsImage, title: impl Into<String>) -> Self {
        Panel::Image {
            image: image.as_image().to_owned(),
            title: title.into(),
        }
    }

    /// A map panel from a `[H, W]` (or `[1, H, W]`) tensor.
    ///
    /// # Errors
    /// [`Error::Shape`] for another shape.
    pub fn map(map: &Tensor, cmap: Colormap, title: impl Into<String>) -> Result<Self> {
        Ok(Panel::Map {
            map: map_array(map)?,
            cmap,
            title: title.into(),
        })
    }

    /// An image with `map` blended over it (`alpha` is the map's weight).
    ///
    /// # Errors
    /// [`Error::Shape`] if the map's size differs from the image's.
    pub fn overlay(
        image: impl AsImage,
        map: &Tensor,
        cmap: Colormap,
        alpha: f32,
        title: impl Into<String>,
    ) -> Result<Self> {
        let image = image.as_image();
        let map = map_array(map)?;
        if map.dim() != (image.shape()[0], image.shape()[1]) {
            return Err(Error::shape(
                "Panel::overlay",
                format!("a map of the image's size {:?}", &image.shape()[..2]),
                format!("{:?}", map.shape()),
            ));
        }
        Ok(Panel::Overlay {
            image: image.to_owned(),
            map,
            cmap,
            alpha: alpha.clamp(0.0, 1.0),
            title: title.into(),
        })
    }

    fn title(&self) -> &str {
        match self {
            Panel::Image { title, .. }
            | Panel::Map { title, .. }
            | Panel::Overlay { title, .. } => title,
            Panel::Empty => "",
        }
    }

    fn values(&self) -> Option<(ArrayView2<'_, f32>, Colormap)> {
        match self {
            Panel::Map { map, cmap, .. } | Panel::Overlay { map, cmap, .. } => {
                Some((map.view(), *cmap))
            }
            _ => None,
        }
    }
}

/// A `[H, W]` map from a `[H, W]` or `[1, H, W]` tensor.
///
/// # Errors
/// [`Error::Shape`] for another shape.
pub fn map_array(t: &Tensor) -> Result<Array2<f32>> {
    let a = crate::convert::to_array_f32(t)?;
    let a = match a.ndim() {
        3 if a.shape()[0] == 1 => a.index_axis_move(ndarray::Axis(0), 0),
        _ => a,
    };
    a.into_dimensionality::<ndarray::Ix2>()
        .map_err(|_| Error::shape("map", "a 2-D map [H, W]", format!("{:?}", t.size())))
}

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
        let per_map_bar = self.colorbar && self.scale == Scale::PerMap;
        let per_column_bar = self.colorbar && self.scale == Scale::PerColumn;
        let shared_bar = self.colorbar && !per_map_bar && !per_column_bar;
        let col_w = self.cell
            + if per_map_bar || per_column_bar {
                BAR_W + BAR_LABELS_W
            } else {
                0
            };
        let top = PAD
            + if self.suptitle.is_some() {
                SUPTITLE_H
            } else {
                0
            };
        let row_h = TITLE_H + self.cell;
        let width = 2 * PAD
            + self.cols as u32 * col_w
            + (self.cols as u32 - 1) * GAP
            + if shared_bar {
                GAP + BAR_W + BAR_LABELS_W
            } else {
                0
            };
        let height = top + self.rows as u32 * row_h + (self.rows as u32 - 1) * GAP / 2 + PAD;
        let mut fig = Figure::blank(width, height);
        fig.grid = Some((self.rows, self.cols));
        let mut texts: Vec<Label> = Vec::new();
        if let Some(s) = &self.suptitle {
            texts.push(Label::centred(
                s,
                width / 2,
                PAD + 6,
                22.0,
                width - 2 * PAD,
                true,
            ));
        }
        let mut bars = Vec::new();
        for r in 0..self.rows {
            for c in 0..self.cols {
                let panel = &self.panels[r * self.cols + c];
                let x0 = PAD + c as u32 * (col_w + GAP);
                let y0 = top + r as u32 * (row_h + GAP / 2);
                let (ix, iy) = (x0, y0 + TITLE_H);
                fig.panels.push(PanelInfo {
                    row: r,
                    col: c,
                    kind: match panel {
                        Panel::Image { .. } => PanelKind::Image,
                        Panel::Map { .. } => PanelKind::Map,
                        Panel::Overlay { .. } => PanelKind::Overlay,
                        Panel::Empty => PanelKind::Empty,
                    },
                    title: panel.title().to_string(),
                    x: ix,
                    y: iy,
                    size: self.cell,
                });
                if !panel.title().is_empty() {
                    texts.push(Label::centred(
                        panel.title(),
                        x0 + self.cell / 2,
                        y0 + 4,
                        TITLE_FONT,
                        self.cell + GAP,
                        false,
                    ));
                }
                match panel {
                    Panel::Empty => {}
                    Panel::Image { image, .. } => {
                        blit_image(&mut fig, image.view(), ix, iy, self.cell)
                    }
                    Panel::Map { map, cmap, .. } => {
                        let range = self.range_of(map.view(), *cmap, c);
                        blend_map(&mut fig, map.view(), *cmap, range, 1.0, ix, iy, self.cell);
                        if per_map_bar {
                            bars.push((ix + self.cell + 6, iy, self.cell, *cmap, range));
                        }
                    }
                    Panel::Overlay {
                        image,
                        map,
                        cmap,
                        alpha,
                        ..
                    } => {
                        let range = self.range_of(map.view(), *cmap, c);
                        blit_image(&mut fig, image.view(), ix, iy, self.cell);
                        blend_map(
                            &mut fig,
                            map.view(),
                            *cmap,
                            range,
                            *alpha,
                            ix,
                            iy,
                            self.cell,
                        );
                        if per_map_bar {
                            bars.push((ix + self.cell + 6, iy, self.cell, *cmap, range));
                        }
                    }
                }
            }
        }
        if per_column_bar {
            // One bar per column with maps, beside it, from its first map's
            // top to its last map's bottom.
            for c in 0..self.cols {
                let rows: Vec<usize> = (0..self.rows)
                    .filter(|&r| self.panels[r * self.cols + c].values().is_some())
                    .collect();
                let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
                    continue;
                };
                let (map, cmap) = self.panels[first * self.cols + c]
                    .values()
                    .expect("a panel with values");
                let range = self.range_of(map, cmap, c);
                let x = PAD + c as u32 * (col_w + GAP) + self.cell + 6;
                let y = |r: usize| top + r as u32 * (row_h + GAP / 2) + TITLE_H;
                bars.push((x, y(first), y(last) + self.cell - y(first), cmap, range));
            }
        }
        if shared_bar {
            if let Some((map, cmap)) = self.panels.iter().find_map(Panel::values) {
                let range = self.range_of(map, cmap, 0);
                let x = width - PAD - BAR_LABELS_W - BAR_W;
                bars.push((x, top + TITLE_H, height - top - TITLE_H - PAD, cmap, range));
            }
        }
        for &(x, y, h, cmap, range) in &bars {
            texts.extend(draw_colorbar(&mut fig, x, y, h, cmap, range));
        }
        draw_labels(&mut fig, &texts)?;
        Ok(fig)
    }
}

/// The value range matplotlib would use for these maps: min to max, or
/// symmetric `(-m, m)` with `m = max |v|` for a diverging map (so that zero is
/// the dark centre). NaN values are skipped.
fn value_range<'a>(maps: impl Iterator<Item = ArrayView2<'a, f32>>, cmap: Colormap) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for m in maps {
        for &v in m.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if cmap.is_diverging() {
        let m = lo.abs().max(hi.abs());
        return (-m, m);
    }
    (lo, hi)
}

/// matplotlib's `Normalize`: `(v - lo) / (hi - lo)`; a flat range maps to 0.
fn normalise(v: f32, (lo, hi): (f32, f32)) -> f64 {
    if hi > lo {
        f64::from((v - lo) / (hi - lo))
    } else {
        0.0
    }
}

/// Nearest-neighbour placement of an `[H, W]` grid into a `cell x cell` box,
/// keeping the aspect ratio (centred): for each destination pixel, the
/// source pixel, or `None` outside the image.
fn fit(h: usize, w: usize, cell: u32) -> impl Iterator<Item = (u32, u32, usize, usize)> {
    let scale = f64::from(cell) / h.max(w) as f64;
    let (dh, dw) = (
        ((h as f64) * scale).round() as u32,
        ((w as f64) * scale).round() as u32,
    );
    let (ox, oy) = ((cell - dw) / 2, (cell - dh) / 2);
    (0..dh).flat_map(move |y| {
        (0..dw).map(move |x| {
            let sy = ((f64::from(y) + 0.5) / scale) as usize;
            let sx = ((f64::from(x) + 0.5) / scale) as usize;
            (ox + x, oy + y, sy.min(h - 1), sx.min(w - 1))
        })
    })
}

fn blit_image(fig: &mut Figure, image: ArrayView3<'_, u8>, x0: u32, y0: u32, cell: u32) {
    let (h, w) = (image.shape()[0], image.shape()[1]);
    let grey = image.shape()[2] == 1;
    for (x, y, sy, sx) in fit(h, w, cell) {
        let c = if grey {
            [image[[sy, sx, 0]]; 3]
        } else {
            [image[[sy, sx, 0]], image[[sy, sx, 1]], image[[sy, sx, 2]]]
        };
        fig.put(x0 + x, y0 + y, c);
    }
}

/// Draws `map` over what is in the cell, with weight `alpha` (1: opaque).
#[allow(clippy::too_many_arguments)]
fn blend_map(
    fig: &mut Figure,
    map: ArrayView2<'_, f32>,
    cmap: Colormap,
    range: (f32, f32),
    alpha: f32,
    x0: u32,
    y0: u32,
    cell: u32,
) {
    let (h, w) = map.dim();
    for (x, y, sy, sx) in fit(h, w, cell) {
        let under = fig.pixel(x0 + x, y0 + y).unwrap_or([255; 3]);
        let over = cmap.color(normalise(map[[sy, sx]], range));
        let mix =
            |a: u8, b: u8| (f32::from(a) * (1.0 - alpha) + f32::from(b) * alpha).round() as u8;
        fig.put(
            x0 + x,
            y0 + y,
            [
                mix(under[0], over[0]),
                mix(under[1], over[1]),
                mix(under[2], over[2]),
            ],
        );
    }
}

/// Draws a vertical colour bar (high values at the top) and returns its
/// tick labels.
fn draw_colorbar(
    fig: &mut Figure,
    x0: u32,
    y0: u32,
    h: u32,
    cmap: Colormap,
    (lo, hi): (f32, f32),
) -> Vec<Label> {
    for y in 0..h {
        let t = 1.0 - f64::from(y) / f64::from((h - 1).max(1));
        let c = cmap.color(t);
        for x in 0..BAR_W {
            fig.put(x0 + x, y0 + y, c);
        }
    }
    let ticks = if cmap.is_diverging() {
        vec![lo, 0.0, hi]
    } else {
        vec![lo, (lo + hi) / 2.0, hi]
    };
    ticks
        .into_iter()
        .map(|v| {
            let t = normalise(v, (lo, hi));
            let y = y0 + ((1.0 - t) * f64::from(h - 1)) as u32;
            for x in BAR_W..BAR_W + 4 {
                fig.put(x0 + x, y, [0, 0, 0]);
            }
            Label {
                text: format_tick(v),
                x: x0 + BAR_W + 6,
                y: y.saturating_sub(6),
                size: 12.0,
                max_w: BAR_LABELS_W - 8,
                centre: false,
                bold: false,
            }
        })
        .collect()
}

/// A tick label: plain decimals for ordinary magnitudes, scientific notation
/// for the tiny values gradients have.
pub(crate) fn format_tick(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (0.01..1000.0).contains(&a) {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// Text to draw after the bitmaps.
pub(crate) struct Label {
    pub(crate) text: String,
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) size: f64,
    pub(crate) max_w: u32,
    pub(crate) centre: bool,
    pub(crate) bold: bool,
}

impl Label {
    fn centred(text: &str, x: u32, y: u32, size: f64, max_w: u32, bold: bool) -> Self {
        Label {
            text: text.to_string(),
            x,
            y,
            size,
            max_w,
            centre: true,
            bold,
        }
    }
}

/// Registers DejaVu Sans with plotters once (no system fonts needed).
pub(crate) fn ensure_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Draws the labels, shrinking a label's font (down to 11 px, its bottom
/// kept in place) and then shortening it with "…" until it fits its width,
/// so titles are never clipped.
pub(crate) fn draw_labels(fig: &mut Figure, labels: &[Label]) -> Result<()> {
    ensure_fonts();
    let (w, h) = (fig.width, fig.height);
    let root = BitMapBackend::with_buffer(&mut fig.rgb, (w, h)).into_drawing_area();
    let plot_err = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
    for l in labels {
        let style_of = |size: f64| {
            let f = FontDesc::new(
                FontFamily::SansSerif,
                size,
                if l.bold {
                    FontStyle::Bold
                } else {
                    FontStyle::Normal
                },
            );
            let anchor = Pos::new(if l.centre { HPos::Center } else { HPos::Left }, VPos::Top);
            TextStyle::from(f).color(&BLACK).pos(anchor)
        };
        let mut size = l.size;
        let mut text = l.text.clone();
        let fits = |t: &str, s: f64| {
            root.estimate_text_size(t, &style_of(s))
                .map(|(tw, _)| tw <= l.max_w)
        };
        while !fits(&text, size).map_err(|e| plot_err(&e))? {
            if size > 11.0 {
                size -= 1.0;
            } else {
                let mut chars: Vec<char> = text.trim_end_matches('…').chars().collect();
                if chars.len() <= 1 {
                    break;
                }
                chars.pop();
                text = chars.into_iter().collect::<String>().trim_end().to_string() + "…";
            }
        }
        // A shrunk label keeps its bottom where the full-size one's was,
        // next to what it names (a panel's title just above its panel).
        let y = l.y as i32 + (l.size - size).round() as i32;
        root.draw(&Text::new(text, (l.x as i32, y), style_of(size)))
            .map_err(|e| plot_err(&e))?;
    }
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_well() {
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(0.00123), "1.2e-3");
        assert_eq!(format_tick(-12.5), "-12.5");
    }

    #[test]
    fn diverging_range_is_symmetric() {
        let m = ndarray::array![[-1.0f32, 3.0]];
        assert_eq!(
            value_range(std::iter::once(m.view()), Colormap::LabDiverging),
            (-3.0, 3.0)
        );
        assert_eq!(
            value_range(std::iter::once(m.view()), Colormap::Hot),
            (-1.0, 3.0)
        );
    }
}
