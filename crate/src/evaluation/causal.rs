//! Deletion and insertion (Petsiuk, Das and Saenko, "RISE: Randomized Input
//! Sampling for Explanation of Black-box Models", BMVC 2018), as the paper's
//! public code defines them (eclique/RISE, `evaluation.py`: `CausalMetric`,
//! `gkern`, `auc`):
//!
//! - pixels are taken in the map's order, most important first (RISE's
//!   `np.flip(np.argsort(map))` over the `H x W` map; among equal values the
//!   later pixel first, a stable version of numpy's unstable sort, so that
//!   the order is defined);
//! - each step moves `step` pixels (224 by default; all channels) from the
//!   start image to the finish image: deletion from the image to zeros of the
//!   normalised tensor (the dataset's mean colour), insertion from a blurred
//!   copy (`gkern(11, 5)` by `conv2d` with padding 5, on the normalised
//!   tensor) to the image;
//! - the score of each of the `ceil(H W / step) + 1` images is the softmax
//!   probability of the class the map explains, recorded before each step;
//! - the curve's area is RISE's `auc`, the trapezoid rule over `[0, 1]`.
//!
//! A faithful map makes the probability fall fast under deletion (a small
//! area) and rise fast under insertion (a large one). Unlike RISE's loop, the
//! steps of an image go through the network in batches.

use tch::{Device, Kind, Tensor};

use crate::attribution::Batch;
use crate::error::{Error, Result};
use crate::model::{copies, copies_logits, Network};
use crate::support::catch_libtorch;

/// Which way pixels move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causal {
    /// From the image to zeros (the mean colour): the probability should fall
    /// fast.
    Deletion,
    /// From RISE's blurred copy to the image: the probability should rise
    /// fast.
    Insertion,
}

impl Causal {
    /// `deletion` or `insertion`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Causal::Deletion => "deletion",
            Causal::Insertion => "insertion",
        }
    }
}

/// The metric's parameters, with RISE's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CausalMetric {
    /// Deletion or insertion.
    pub kind: Causal,
    /// Pixels per step. Default 224 (RISE's single-image setting): 224 steps
    /// and 225 scores on a 224 x 224 image.
    pub step: usize,
    /// Images of the sequence per forward pass. Default 10 (faster than 25 or
    /// 1 on a 2-core CPU: `crate/benches/LOG.md`).
    pub batch_size: usize,
}

impl CausalMetric {
    /// RISE's deletion metric.
    #[must_use]
    pub fn deletion() -> Self {
        CausalMetric {
            kind: Causal::Deletion,
            step: 224,
            batch_size: 10,
        }
    }

    /// RISE's insertion metric.
    #[must_use]
    pub fn insertion() -> Self {
        CausalMetric {
            kind: Causal::Insertion,
            ..CausalMetric::deletion()
        }
    }

    /// Sets the pixels per step.
    #[must_use]
    pub fn with_step(mut self, step: usize) -> Self {
        self.step = step;
        self
    }

    /// Sets the batch size.
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// The number of scores on an image of `pixels` pixels.
    #[must_use]
    pub fn scores_per_image(&self, pixels: usize) -> usize {
        pixels.div_ceil(self.step.max(1)) + 1
    }

    /// The curves `[N, steps + 1]` (float32 probabilities) of a preprocessed
    /// batch `x` `[N, C, H, W]`, its maps `[N, H, W]` (higher: more
    /// important) and the class each map explains.
    ///
    /// # Errors
    /// [`Error::Shape`] for a batch, maps or targets that do not match,
    /// [`Error::Parameter`] for a step or batch size of 0, NaN in the
    /// input or the maps, or a target outside the network's classes.
    pub fn curves(
        &self,
        net: &dyn Network,
        x: &Tensor,
        maps: &Tensor,
        targets: &[i64],
    ) -> Result<Tensor> {
        const OP: &str = "causal metric";
        if self.step == 0 || self.batch_size == 0 {
            return Err(Error::parameter(
                OP,
                "step and batch_size",
                format!("{} and {}", self.step, self.batch_size),
                "must be at least 1",
            ));
        }
        // The batch and its targets, checked once; then the maps.
        Batch::new(OP, net, x, targets)?;
        let s = x.size();
        let (n, h, w) = (s[0], s[2], s[3]);
        if maps.size() != [n, h, w] {
            return Err(Error::shape(
                OP,
                format!("maps [{n}, {h}, {w}], one per image"),
                format!("{:?}", maps.size()),
            ));
        }
        crate::support::check_finite(OP, maps)?;
        let _guard = tch::no_grad_guard();
        let pixels = (h * w) as usize;
        let steps = self.scores_per_image(pixels) - 1;
        let substrate = match self.kind {
            Causal::Deletion => x.zeros_like(),
            Causal::Insertion => rise_blur(x)?,
        };
        let mut curves = Vec::with_capacity(n as usize);
        for i in 0..n {
            // Built in the network's layout for copies, so the batches need no copy.
            let image = copies(net, &x.narrow(0, i, 1));
            let sub = copies(net, &substrate.narrow(0, i, 1));
            let (start, finish) = match self.kind {
                Causal::Deletion => (image, sub),
                Causal::Insertion => (sub, image),
            };
            let rank = pixel_ranks(&maps.get(i))?
                .to_device(x.device())
                .view([1, 1, h, w]);
            let mut scores = Vec::with_capacity(steps + 1);
            for first in (0..=steps).step_by(self.batch_size) {
                let k = self.batch_size.min(steps + 1 - first);
                // Image j of the sequence has its first j * step pixels moved.
                let moved: Vec<i64> = (first..first + k).map(|j| (j * self.step) as i64).collect();
                let moved = Tensor::from_slice(&moved)
                    .to_device(x.device())
                    .view([-1, 1, 1, 1]);
                let mask = rank.lt_tensor(&moved); // [k, 1, H, W]
                let batch = finish.where_self(&mask, &start);
                let logits = catch_libtorch(&batch, || copies_logits(net, &copies(net, &batch)))?;
                scores.push(
                    logits
                        .softmax(1, Kind::Float)
                        .select(1, targets[i as usize]),
                );
            }
            curves.push(Tensor::cat(&scores, 0).unsqueeze(0));
        }
        Ok(Tensor::cat(&curves, 0).to_device(Device::Cpu))
    }
}

/// Each pixel's position in the order of importance `[H, W]` (int64): 0 for
/// the most important. Descending values; among equal values the later
/// pixel first (`np.flip` of a stable ascending `argsort`).
fn pixel_ranks(map: &Tensor) -> Result<Tensor> {
    let v = Vec::<f32>::try_from(
        map.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .flatten(0, -1),
    )?;
    let mut order: Vec<usize> = (0..v.len()).collect();
    // Stable ascending, then reversed.
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut rank = vec![0i64; v.len()];
    for (pos, &p) in order.iter().rev().enumerate() {
        rank[p] = pos as i64;
    }
    Ok(Tensor::from_slice(&rank).view(map.size().as_slice()))
}

/// RISE's `gkern(11, 5)`: scipy's `gaussian_filter` (sigma 5, reflect mode)
/// of an 11 x 11 delta, in single precision.
pub fn rise_kernel() -> Tensor {
    let mut delta = ndarray::Array3::<f64>::zeros((11, 11, 1));
    delta[[5, 5, 0]] = 1.0;
    let k = crate::transforms::blur_image(delta.view(), 5.0).expect("sigma 5 is valid");
    let v: Vec<f32> = k.iter().map(|&x| x as f32).collect();
    Tensor::from_slice(&v).view([11, 11])
}

/// RISE's insertion substrate: each channel of `x` `[N, 3, H, W]` convolved
/// with [`rise_kernel`], zero padding 5 (`nn.functional.conv2d(x, kern,
/// padding=5)` with `kern[c, c] = k`).
///
/// # Errors
/// [`Error::Torch`] if libtorch fails.
pub fn rise_blur(x: &Tensor) -> Result<Tensor> {
    let c = x.size()[1];
    let k = rise_kernel().to_device(x.device());
    let kern = Tensor::zeros([c, c, 11, 11], (Kind::Float, x.device()));
    for i in 0..c {
        kern.get(i).get(i).copy_(&k);
    }
    Ok(x.f_conv2d(&kern, None::<Tensor>, [1, 1], [5, 5], [1, 1], 1)?)
}

/// RISE's `auc`: the trapezoid rule over `[0, 1]`, `(sum - first / 2 - last
/// / 2) / (n - 1)`, in double precision.
#[must_use]
pub fn auc(curve: &[f32]) -> f64 {
    if curve.len() < 2 {
        return curve.first().map_or(f64::NAN, |&v| f64::from(v));
    }
    let sum: f64 = curve.iter().map(|&v| f64::from(v)).sum();
    let (first, last) = (f64::from(curve[0]), f64::from(curve[curve.len() - 1]));
    (sum - first / 2.0 - last / 2.0) / (curve.len() - 1) as f64
}

/// The areas of each curve of `curves` `[N, S]`.
///
/// # Errors
/// [`Error::Shape`] if `curves` is not 2-D.
pub fn aucs(curves: &Tensor) -> Result<Vec<f64>> {
    if curves.dim() != 2 {
        return Err(Error::shape(
            "aucs",
            "curves [N, S]",
            format!("{:?}", curves.size()),
        ));
    }
    (0..curves.size()[0])
        .map(|i| {
            Ok(auc(&Vec::<f32>::try_from(
                curves.get(i).to_kind(Kind::Float),
            )?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_is_the_trapezoid_rule() {
        // 1, 0.5, 0 over three points: (1.5 - 0.5 - 0) / 2 = 0.5.
        assert!((auc(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn ranks_put_the_largest_first_and_later_ties_first() {
        let r = pixel_ranks(&Tensor::from_slice(&[0.5f32, 2.0, 0.5, 1.0]).view([2, 2])).unwrap();
        assert_eq!(
            Vec::<i64>::try_from(r.flatten(0, -1)).unwrap(),
            [3, 0, 2, 1]
        );
    }

    #[test]
    fn the_rise_kernel_sums_to_one_and_is_flat() {
        let k = rise_kernel();
        assert!((k.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-6);
        // Sigma 5 over 11 pixels with reflection: almost a box filter.
        let (lo, hi) = (k.min().double_value(&[]), k.max().double_value(&[]));
        assert!(hi / lo < 1.2, "{lo} {hi}");
    }
}
