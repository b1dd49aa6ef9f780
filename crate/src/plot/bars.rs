//! Bar charts: counts by category (the marks of a class, in the grader's
//! report).

use plotters::prelude::*;

use super::figure::Figure;
use super::text::{ensure_fonts, format_tick};
use crate::error::{Error, Result};

/// matplotlib's first colour (`tab10`'s blue).
const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);

/// Bars of heights `values` over named categories, with a title and axis
/// labels; the value axis labelled at whole numbers (counts).
///
/// ```
/// use saliency_lab::plot::BarChart;
/// let fig = BarChart::new("marks", &["0", "1", "2"], &[1.0, 0.0, 4.0])?
///     .with_axes("mark", "students")
///     .render()?;
/// assert_eq!((fig.width(), fig.height()), (720, 400));
/// # Ok::<(), saliency_lab::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BarChart {
    title: String,
    x_label: String,
    y_label: String,
    labels: Vec<String>,
    values: Vec<f64>,
    size: (u32, u32),
}

impl BarChart {
    /// A chart titled `title` of one bar per label, 720 x 400 pixels.
    ///
    /// # Errors
    /// [`Error::Parameter`] if there are no bars, the counts differ, or a
    /// value is negative or not finite.
    pub fn new<S: AsRef<str>>(
        title: impl Into<String>,
        labels: &[S],
        values: &[f64],
    ) -> Result<Self> {
        if labels.is_empty() || labels.len() != values.len() {
            return Err(Error::parameter(
                "BarChart",
                "values",
                format!("{} labels, {} values", labels.len(), values.len()),
                "one value per label, at least one",
            ));
        }
        if let Some(v) = values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(Error::parameter(
                "BarChart",
                "values",
                v,
                "bars are finite and at least 0",
            ));
        }
        Ok(BarChart {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            labels: labels.iter().map(|l| l.as_ref().to_string()).collect(),
            values: values.to_vec(),
            size: (720, 400),
        })
    }

    /// The axes' labels.
    #[must_use]
    pub fn with_axes(mut self, x: impl Into<String>, y: impl Into<String>) -> Self {
        self.x_label = x.into();
        self.y_label = y.into();
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
    /// [`Error::Plot`] if drawing fails.
    pub fn render(&self) -> Result<Figure> {
        ensure_fonts();
        let n = self.values.len();
        let top = self.values.iter().copied().fold(0.0f64, f64::max).max(1.0) * 1.08;
        let (w, h) = self.size;
        let mut fig = Figure::blank(w, h);
        {
            let root = BitMapBackend::with_buffer(&mut fig.rgb, (w, h)).into_drawing_area();
            let err = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(48)
                .y_label_area_size(56)
                .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)
                .map_err(|e| err(&e))?;
            let labels = self.labels.clone();
            let tick = move |v: &f64| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            };
            // Counts are whole: a label only at whole numbers.
            let whole = |v: &f64| {
                if (v - v.round()).abs() < 1e-9 {
                    format_tick(v.round() as f32)
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_labels(n)
                .x_label_formatter(&tick)
                .y_labels(top.ceil() as usize + 1)
                .y_label_formatter(&whole)
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(|e| err(&e))?;
            chart
                .draw_series(self.values.iter().enumerate().map(|(i, &v)| {
                    let x = i as f64;
                    Rectangle::new([(x - 0.38, 0.0), (x + 0.38, v)], BLUE.filled())
                }))
                .map_err(|e| err(&e))?;
            root.present().map_err(|e| err(&e))?;
        }
        Ok(fig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_to_their_heights_and_bad_values_refused() {
        let fig = BarChart::new("t", &["a", "b", "c"], &[0.0, 2.0, 4.0])
            .unwrap()
            .render()
            .unwrap();
        // Column by column, the blue run is longer for the taller bar.
        let blue_rows = |x: u32| {
            (0..fig.height())
                .filter(|&y| fig.pixel(x, y).unwrap() == [0x1f, 0x77, 0xb4])
                .count()
        };
        let (w, left) = (fig.width() - 12 - 56, 12 + 56);
        let column = |i: f64| left + ((i + 0.5) / 3.0 * f64::from(w)) as u32;
        let (b, c) = (blue_rows(column(1.0)), blue_rows(column(2.0)));
        assert_eq!(blue_rows(column(0.0)), 0);
        assert!(b > 50 && c > b + 50, "{b} {c}");
        assert!(BarChart::new("t", &["a"], &[f64::NAN]).is_err());
        assert!(BarChart::new("t", &["a", "b"], &[1.0]).is_err());
        assert!(BarChart::new::<&str>("t", &[], &[]).is_err());
    }
}
