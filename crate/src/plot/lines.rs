//! Line charts: the trust lab's curves (deletion and insertion, Spearman
//! correlation per randomised layer, the noise tunnel's convergence).

use plotters::prelude::*;

use super::figure::Figure;
use super::text::{ensure_fonts, format_tick};
use crate::error::{Error, Result};

/// matplotlib's default colour cycle (`tab10`).
const TAB10: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// One line of a [`LineChart`]: a name for the legend and its points.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's entry.
    pub name: String,
    /// `(x, y)` points, in order; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
    /// Dashed (a control, say).
    pub dashed: bool,
}

impl Series {
    /// A solid line through `ys` at `x = 0, 1, 2, ...`.
    #[must_use]
    pub fn indexed(name: impl Into<String>, ys: &[f64]) -> Self {
        Series {
            name: name.into(),
            points: ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
            dashed: false,
        }
    }

    /// A solid line through `ys` spread evenly over `x` in `[0, 1]` (a
    /// deletion or insertion curve: the fraction of pixels moved).
    #[must_use]
    pub fn over_unit(name: impl Into<String>, ys: &[f64]) -> Self {
        let n = (ys.len().max(2) - 1) as f64;
        Series {
            name: name.into(),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, &y)| (i as f64 / n, y))
                .collect(),
            dashed: false,
        }
    }

    /// The same line, dashed.
    #[must_use]
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A chart of lines with a title, axis labels and a legend.
///
/// ```
/// use saliency_lab::plot::{LineChart, Series};
/// let fig = LineChart::new("deletion")
///     .with_axes("fraction of pixels deleted", "probability")
///     .with_series(Series::over_unit("vanilla (AUC 0.03)", &[0.9, 0.2, 0.05]))
///     .render()?;
/// assert_eq!((fig.width(), fig.height()), (720, 440));
/// # Ok::<(), saliency_lab::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LineChart {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<Series>,
    x_ticks: Option<Vec<String>>,
    y_range: Option<(f64, f64)>,
    size: (u32, u32),
}

impl LineChart {
    /// An empty chart titled `title`, 720 x 440 pixels.
    #[must_use]
    pub fn new(title: impl Into<String>) -> Self {
        LineChart {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            x_ticks: None,
            y_range: None,
            size: (720, 440),
        }
    }

    /// The axes' labels.
    #[must_use]
    pub fn with_axes(mut self, x: impl Into<String>, y: impl Into<String>) -> Self {
        self.x_label = x.into();
        self.y_label = y.into();
        self
    }

    /// Adds a line.
    #[must_use]
    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Names for the ticks at `x = 0, 1, 2, ...` (layers, say).
    #[must_use]
    pub fn with_x_ticks<S: AsRef<str>>(mut self, ticks: &[S]) -> Self {
        self.x_ticks = Some(ticks.iter().map(|t| t.as_ref().to_string()).collect());
        self
    }

    /// A fixed range for `y` (default: the data's, with a margin).
    #[must_use]
    pub fn with_y_range(mut self, low: f64, high: f64) -> Self {
        self.y_range = Some((low, high));
        self
    }

    /// The figure's size in pixels.
    #[must_use]
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.size = (width.max(200), height.max(150));
        self
    }

    /// Draws the chart.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a chart without finite points, [`Error::Plot`]
    /// if drawing fails.
    pub fn render(&self) -> Result<Figure> {
        let finite = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in finite {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if !x0.is_finite() {
            return Err(Error::parameter(
                "LineChart",
                "series",
                self.series.len(),
                "no finite points to draw",
            ));
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let (y0, y1) = self.y_range.unwrap_or_else(|| {
            let pad = ((y1 - y0) * 0.05).max(1e-6);
            (y0 - pad, y1 + pad)
        });
        ensure_fonts();
        let (w, h) = self.size;
        let mut fig = Figure::blank(w, h);
        {
            let root = BitMapBackend::with_buffer(&mut fig.rgb, (w, h)).into_drawing_area();
            let err = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
            let ticks = self.x_ticks.clone();
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(12)
                // Room for the last tick's label, centred on the right edge.
                .margin_right(44)
                .x_label_area_size(if ticks.is_some() { 64 } else { 40 })
                .y_label_area_size(60)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| err(&e))?;
            let tick_label = |v: &f64| match &ticks {
                Some(t) => {
                    let i = v.round();
                    if (v - i).abs() < 1e-6 && i >= 0.0 {
                        t.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                }
                None => format_tick(*v as f32),
            };
            let mut mesh = chart.configure_mesh();
            mesh.disable_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_label_formatter(&tick_label)
                .y_label_formatter(&|v| format_tick(*v as f32))
                .label_style(("sans-serif", 13));
            if let Some(t) = &self.x_ticks {
                mesh.x_labels(t.len());
            }
            mesh.draw().map_err(|e| err(&e))?;
            for (k, s) in self.series.iter().enumerate() {
                let colour = TAB10[k % TAB10.len()];
                let style = colour.stroke_width(2);
                let points: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                let drawn = if s.dashed {
                    chart.draw_series(DashedLineSeries::new(points, 6, 4, style))
                } else {
                    chart.draw_series(LineSeries::new(points, style))
                };
                drawn
                    .map_err(|e| err(&e))?
                    .label(&s.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 12))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        Ok(fig)
    }
}
