//! Histograms of saliency values, as the lab draws them with
//! `plt.hist(values, density=True, bins=1000)` and `plt.xlim(range)`.

use plotters::prelude::*;
use tch::Tensor;

use super::figure::Figure;
use super::text::{ensure_fonts, format_tick};
use crate::error::{Error, Result};

/// matplotlib's default bar colour (`C0`).
const C0: RGBColor = RGBColor(0x1f, 0x77, 0xb4);

/// A density histogram as numpy computes it: `bins` equal bins over the
/// values' own `[min, max]`, heights `count / (n * bin width)`. Returns the
/// bin edges (`bins + 1`) and the densities (`bins`).
///
/// # Errors
/// [`Error::Parameter`] for no finite values or zero bins.
pub fn density(values: &[f32], bins: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if bins == 0 {
        return Err(Error::parameter(
            "histogram",
            "bins",
            0,
            "must be at least 1",
        ));
    }
    let finite: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| f64::from(v))
        .collect();
    if finite.is_empty() {
        return Err(Error::parameter(
            "histogram",
            "values",
            "no finite value",
            "need data to count",
        ));
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // numpy widens a flat range to (v - 0.5, v + 0.5).
    let (lo, hi) = if hi == lo {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..=bins).map(|i| lo + width * i as f64).collect();
    let mut counts = vec![0usize; bins];
    for v in &finite {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let n = finite.len() as f64;
    Ok((
        edges,
        counts.into_iter().map(|c| c as f64 / (n * width)).collect(),
    ))
}

/// The lab's histogram figure: the density of all values of `values` (any
/// shape) in `bins` bins, shown over `x_range` (the lab: `(0.0, 0.25)` for the
/// max-abs maps, `(-0.2, 0.2)` for the raw gradient).
///
/// # Errors
/// [`Error::Parameter`] for an empty or non-finite tensor, zero bins or an
/// empty range; [`Error::Plot`] if drawing fails.
pub fn histogram(values: &Tensor, bins: usize, x_range: (f64, f64), title: &str) -> Result<Figure> {
    let v = crate::convert::to_array_f32(values)?;
    let v: Vec<f32> = v.iter().copied().collect();
    let (edges, dens) = density(&v, bins)?;
    let (x0, x1) = x_range;
    if x1.partial_cmp(&x0) != Some(std::cmp::Ordering::Greater) {
        return Err(Error::parameter(
            "histogram",
            "x_range",
            format!("({x0}, {x1})"),
            "must be increasing",
        ));
    }
    let visible = edges
        .windows(2)
        .zip(&dens)
        .filter(|(e, _)| e[1] > x0 && e[0] < x1);
    let y_max = visible
        .map(|(_, &d)| d)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.05;
    ensure_fonts();
    let (w, h) = (720u32, 440u32);
    let mut fig = Figure::blank(w, h);
    {
        let root = BitMapBackend::with_buffer(&mut fig.rgb, (w, h)).into_drawing_area();
        let err = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0.0..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("value")
            .y_desc("density")
            .x_label_formatter(&|v| format_tick(*v as f32))
            .y_label_formatter(&|v| format_tick(*v as f32))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(
                edges
                    .windows(2)
                    .zip(&dens)
                    .filter(|(e, d)| **d > 0.0 && e[1] > x0 && e[0] < x1)
                    .map(|(e, &d)| {
                        Rectangle::new([(e[0].max(x0), 0.0), (e[1].min(x1), d)], C0.filled())
                    }),
            )
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn density_integrates_to_one() {
        // Values 0, 1, 1, 2 in 2 bins over [0, 2]: widths 1, counts 1 and 3
        // (the right edge is closed) -> densities 0.25, 0.75.
        let (edges, d) = density(&[0.0, 1.0, 1.0, 2.0], 2).unwrap();
        assert_eq!(edges, [0.0, 1.0, 2.0]);
        assert_eq!(d, [0.25, 0.75]);
        assert!(density(&[f32::NAN], 10).is_err());
        assert!(density(&[1.0], 0).is_err());
    }
}
