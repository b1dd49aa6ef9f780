//! The SmoothGrad homework's checks that need more than a line: its
//! reference comparison, and whether a figure's row shows given maps.

use tch::{Kind, Tensor};

use crate::plot::{Figure, PanelKind};

/// The SmoothGrad homework's reference test: a student's max-abs maps
/// against the crate's, image by image, `[N, H, W]` each. They must agree in
/// structure (the Pearson correlation of their 8 x 8-pixel block means above
/// 0.9) and in size (the ratio of their norms within 0.8..1.25). Both are
/// Monte Carlo estimates with their own noise, so the bounds are wide enough
/// for any correct answer, whatever its noise or batching
/// (`crate/tests/grading.rs` checks 20 seeds), and narrow enough to catch one
/// noisy sample, blurring instead of noise, or unscaled noise.
///
/// # Errors
/// A message for the student naming the image and what differs.
pub fn compare_smoothgrad_maps(reference: &Tensor, student: &Tensor) -> Result<(), String> {
    if student.size() != reference.size() {
        return Err(format!(
            "the maps have shape {:?}, the reference's {:?}",
            student.size(),
            reference.size()
        ));
    }
    let pool = |m: &Tensor| {
        m.to_kind(Kind::Float)
            .unsqueeze(1)
            .avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None::<i64>)
            .flatten(1, -1)
    };
    let (r, s) = (pool(reference), pool(student));
    for i in 0..reference.size()[0] {
        let (a, b) = (r.get(i), s.get(i));
        let (a, b) = (&a - a.mean(Kind::Float), &b - b.mean(Kind::Float));
        let corr = (&a * &b).sum(Kind::Float).double_value(&[])
            / (a.norm().double_value(&[]) * b.norm().double_value(&[]));
        let ratio = student.get(i).to_kind(Kind::Float).norm().double_value(&[])
            / reference.get(i).norm().double_value(&[]);
        // NaN (a map of zeros or NaN) fails both tests.
        if corr.is_nan() || corr <= 0.9 {
            return Err(format!(
                "image {i}: the map's structure differs from SmoothGrad's (block correlation {corr:.2})"
            ));
        }
        if !(ratio > 0.8 && ratio < 1.25) {
            return Err(format!(
                "image {i}: the map is {ratio:.2} times SmoothGrad's (averaged over n noisy samples?)"
            ));
        }
    }
    Ok(())
}

/// Whether row `row` of `fig` shows `maps` (`[N, H, W]`, one per column,
/// left to right): each map panel's pixels, as the brightness of their
/// colours (`hot` and the lab's other sequential maps grow brighter with the
/// value), and its map, each averaged over a 28 x 28 grid of blocks, must
/// correlate above `threshold` (Pearson). Measured on the lab's first five
/// images (crate/tests/grading.rs): two SmoothGrad maps of 20 samples each,
/// with other noise, at least 0.93; a vanilla gradient's map against
/// SmoothGrad's at most 0.70.
///
/// # Errors
/// A message for the student naming the panel and the correlation.
pub fn figure_row_matches(
    fig: &Figure,
    row: usize,
    maps: &Tensor,
    threshold: f64,
) -> Result<(), String> {
    for (col, corr) in figure_row_correlations(fig, row, maps)?
        .into_iter()
        .enumerate()
    {
        if corr.is_nan() || corr <= threshold {
            return Err(format!(
                "row {}, column {}: the map shown is not your smooth_grad's map of that image \
                 (block correlation {corr:.2}, needs > {threshold})",
                row + 1,
                col + 1
            ));
        }
    }
    Ok(())
}

/// Per panel of row `row` of `fig`, left to right, the block correlation
/// [`figure_row_matches`] compares with its threshold (NaN where a map or a
/// panel is flat).
///
/// # Errors
/// A message naming the row or panel if the row does not hold one map panel
/// per map, or a panel lies outside the figure.
pub fn figure_row_correlations(
    fig: &Figure,
    row: usize,
    maps: &Tensor,
) -> Result<Vec<f64>, String> {
    let mut panels: Vec<_> = fig.panels().iter().filter(|p| p.row == row).collect();
    panels.sort_by_key(|p| p.col);
    let n = maps.size().first().copied().unwrap_or(0);
    if panels.len() as i64 != n || maps.dim() != 3 {
        return Err(format!(
            "row {} has {} panels, for {} maps",
            row + 1,
            panels.len(),
            n
        ));
    }
    let blocks = |t: &Tensor| {
        t.to_kind(Kind::Float)
            .view([1, 1, t.size()[0], t.size()[1]])
            .adaptive_avg_pool2d([28, 28])
            .flatten(0, -1)
    };
    let width = fig.width as usize;
    let mut out = Vec::with_capacity(panels.len());
    for (i, p) in panels.iter().enumerate() {
        if p.kind != PanelKind::Map {
            return Err(format!("row {}, column {}: not a map", row + 1, p.col + 1));
        }
        let (x0, y0, size) = (p.x as usize, p.y as usize, p.size as usize);
        if size == 0 || x0 + size > width || (y0 + size) * width * 3 > fig.rgb.len() {
            return Err(format!(
                "row {}, column {}: outside the figure",
                row + 1,
                p.col + 1
            ));
        }
        let mut bright = Vec::with_capacity(size * size);
        for y in y0..y0 + size {
            for x in x0..x0 + size {
                let k = (y * width + x) * 3;
                bright.push(
                    f32::from(fig.rgb[k]) + f32::from(fig.rgb[k + 1]) + f32::from(fig.rgb[k + 2]),
                );
            }
        }
        let shown = blocks(&Tensor::from_slice(&bright).view([size as i64, size as i64]));
        let want = blocks(&maps.get(i as i64));
        let (a, b) = (
            &shown - shown.mean(Kind::Float),
            &want - want.mean(Kind::Float),
        );
        out.push(
            (&a * &b).sum(Kind::Float).double_value(&[])
                / (a.norm().double_value(&[]) * b.norm().double_value(&[])),
        );
    }
    Ok(out)
}
