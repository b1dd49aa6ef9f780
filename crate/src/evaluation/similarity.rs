//! How alike two maps are: Spearman's rank correlation (scipy's
//! `spearmanr`) and the structural similarity index (scikit-image's
//! `structural_similarity`), as Adebayo et al. 2018 compare a map before and
//! after the model is randomised.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

fn values(op: &'static str, t: &Tensor) -> Result<Vec<f64>> {
    let v = Vec::<f64>::try_from(
        t.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(0, -1),
    )?;
    if v.is_empty() {
        return Err(Error::shape(
            op,
            "a non-empty map",
            format!("{:?}", t.size()),
        ));
    }
    Ok(v)
}

/// Ranks from 1, ties given their average rank (scipy's `rankdata`).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            r[k] = rank;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

/// Spearman's rank correlation of two maps of the same shape, flattened
/// (scipy's `spearmanr`: the Pearson correlation of their ranks, ties
/// averaged). NaN where a map is constant, as scipy gives.
///
/// # Errors
/// [`Error::Shape`] if the shapes differ or the maps are empty.
pub fn spearman(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.size() != b.size() {
        return Err(Error::shape(
            "spearman",
            format!("two maps of one shape, {:?}", a.size()),
            format!("{:?}", b.size()),
        ));
    }
    let (a, b) = (values("spearman", a)?, values("spearman", b)?);
    Ok(pearson(&ranks(&a), &ranks(&b)))
}

/// What a table or CSV shows for a similarity: the number (to `digits`),
/// or "undefined: constant map" where it is NaN (a rank correlation with a
/// map that is constant has no value).
#[must_use]
pub fn describe(value: f64, digits: usize) -> String {
    if value.is_finite() {
        format!("{value:.digits$}")
    } else {
        UNDEFINED.to_string()
    }
}

/// What [`describe`] says for a similarity that has no value.
pub const UNDEFINED: &str = "undefined: constant map";

/// A map rescaled to `[0, 1]` (minus its minimum, over its range; a
/// constant map gives zeros), in double precision: how maps are put on one
/// footing before [`ssim`] (as Adebayo et al.'s code does).
pub fn normalise(map: &Tensor) -> Tensor {
    let m = map.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    let (lo, hi) = (m.min(), m.max());
    let range = (&hi - &lo).double_value(&[]);
    if range > 0.0 {
        (m - lo) / range
    } else {
        m.zeros_like()
    }
}

/// The structural similarity of two 2-D maps `[H, W]` with values in
/// `[0, data_range]`: scikit-image's `structural_similarity(a, b,
/// data_range=data_range)` with its defaults: a 7 x 7 uniform window, `K1 =
/// 0.01`, `K2 = 0.03`, sample covariances, the mean over the pixels whose
/// window lies inside the map (the border of 3 pixels cropped). Computed in
/// double precision.
///
/// # Errors
/// [`Error::Shape`] if the maps are not 2-D of one shape, at least 7 x 7.
pub fn ssim(a: &Tensor, b: &Tensor, data_range: f64) -> Result<f64> {
    const WIN: i64 = 7;
    let s = a.size();
    if s.len() != 2 || s != b.size() || s[0] < WIN || s[1] < WIN {
        return Err(Error::shape(
            "ssim",
            "two 2-D maps [H, W] of one shape, at least 7 x 7",
            format!("{:?} and {:?}", a.size(), b.size()),
        ));
    }
    let prep = |t: &Tensor| {
        t.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .view([1, 1, s[0], s[1]])
    };
    let (x, y) = (prep(a), prep(b));
    // The windows that lie inside the map: exactly scikit-image's cropped
    // region (its uniform_filter's border mode only touches the crop).
    let mean = |t: &Tensor| t.avg_pool2d([WIN, WIN], [1, 1], [0, 0], false, true, None::<i64>);
    let (ux, uy) = (mean(&x), mean(&y));
    let (uxx, uyy, uxy) = (mean(&(&x * &x)), mean(&(&y * &y)), mean(&(&x * &y)));
    let np = (WIN * WIN) as f64;
    let cov = np / (np - 1.0);
    let vx = (&uxx - &ux * &ux) * cov;
    let vy = (&uyy - &uy * &uy) * cov;
    let vxy = (&uxy - &ux * &uy) * cov;
    let (c1, c2) = ((0.01 * data_range).powi(2), (0.03 * data_range).powi(2));
    let num = (&ux * &uy * 2.0 + c1) * (vxy * 2.0 + c2);
    let den = (ux.square() + uy.square() + c1) * (vx + vy + c2);
    Ok((num / den).mean(Kind::Double).double_value(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties_as_scipy_does() {
        // scipy.stats.rankdata([10, 20, 10, 30]) = [1.5, 3, 1.5, 4]
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), [1.5, 3.0, 1.5, 4.0]);
    }

    #[test]
    fn spearman_of_monotone_and_reversed_maps() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]);
        let b = Tensor::from_slice(&[10.0f32, 20.0, 35.0, 100.0]);
        assert!((spearman(&a, &b).unwrap() - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &b.neg()).unwrap() + 1.0).abs() < 1e-12);
        assert!(spearman(&a, &Tensor::ones([4], (Kind::Float, Device::Cpu)))
            .unwrap()
            .is_nan());
    }

    #[test]
    fn ssim_of_a_map_with_itself_is_one() {
        let a = normalise(&Tensor::rand([20, 30], (Kind::Float, Device::Cpu)));
        assert!((ssim(&a, &a, 1.0).unwrap() - 1.0).abs() < 1e-12);
        let b = normalise(&Tensor::rand([20, 30], (Kind::Float, Device::Cpu)));
        assert!(ssim(&a, &b, 1.0).unwrap() < 0.5);
        assert!(ssim(&a, &b.narrow(0, 0, 10), 1.0).is_err());
    }
}
