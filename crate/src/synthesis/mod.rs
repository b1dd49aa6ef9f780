//! The other side of the gradient: images made by gradient ascent on a class
//! score, the two other parts of CS231n's *Network Visualization* (the lab's
//! source) on the same pretrained network.
//!
//! - [`FoolingImage`]: a small change to a real image that makes the network
//!   predict another class (Szegedy et al. 2014, "Intriguing properties of
//!   neural networks"), by CS231n's normalised gradient ascent;
//! - [`ClassVisualisation`]: an image synthesised from noise to maximise one
//!   class's score (Simonyan et al. 2014), with CS231n's regularisers (L2,
//!   jitter, clamping, blur; Yosinski et al. 2015).
//!
//! Both take any [`Network`](crate::Network) and a batch of targets, one per
//! image, and run on the device of their input (the CPU or a GPU). Every
//! image of a batch is computed as if it were alone: its steps are CS231n's,
//! whatever the other images do, and its randomness (a visualisation's noise
//! and jitter) depends only on the seed and its index.
//!
//! ```no_run
//! use saliency_lab::prelude::*;
//! use saliency_lab::synthesis::{ClassVisualisation, FoolingImage};
//! let data = load_imagenet_val(assets::data_path()?)?;
//! let model = squeezenet1_1(assets::weights_path()?, Device::Cpu)?;
//! let x = preprocess_batch(data.images.slice(s![0..1, .., .., ..]))?;
//! let fooled = FoolingImage::default().run(&model, &x, &[6])?; // a stingray
//! assert!(fooled.fooled[0]);
//! let visual = ClassVisualisation::default().with_seed(3).run(&model, &[76], Device::Cpu)?; // a tarantula
//! assert_eq!(visual.scores.size(), [1, 100]);
//! # Ok::<(), saliency_lab::Error>(())
//! ```

mod fooling;
mod visualisation;

pub use fooling::{Fooled, FoolingImage};
pub use visualisation::{ClassVisualisation, Jitter, Visualisation};

use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::transforms::{SQUEEZENET_MEAN, SQUEEZENET_STD};

/// The range each channel of a real image has after preprocessing,
/// `[(0 - mean) / std, (1 - mean) / std]`, computed in single precision as
/// CS231n computes it (`float(-SQUEEZENET_MEAN[c] / SQUEEZENET_STD[c])` on
/// float32 arrays).
#[must_use]
pub fn valid_range() -> [(f32, f32); 3] {
    std::array::from_fn(|c| {
        (
            -SQUEEZENET_MEAN[c] / SQUEEZENET_STD[c],
            (1.0 - SQUEEZENET_MEAN[c]) / SQUEEZENET_STD[c],
        )
    })
}

/// `x` `[N, 3, H, W]` with each channel clamped to [`valid_range`].
pub(crate) fn clamp_to_valid(x: &Tensor) -> Tensor {
    let range = valid_range();
    let channels: Vec<Tensor> = (0..3)
        .map(|c| {
            let (lo, hi) = range[c as usize];
            x.narrow(1, c, 1).clamp(f64::from(lo), f64::from(hi))
        })
        .collect();
    Tensor::cat(&channels, 1)
}

/// Each image's gradient divided by its own L2 norm, `[N, ...]` (CS231n's
/// `g / g.norm()`, per image of a batch). A zero gradient stays zero.
pub(crate) fn normalised(grad: &Tensor) -> Tensor {
    let n = grad.size()[0];
    let norm = grad
        .reshape([n, -1])
        .norm_scalaropt_dim(2, [1], false)
        .view([n, 1, 1, 1]);
    grad / norm.clamp_min(f64::from(f32::MIN_POSITIVE))
}

/// Checks a step size or a regularisation weight: finite and at least 0
/// (above 0 where `positive`).
fn check_weight(op: &'static str, name: &'static str, v: f64, positive: bool) -> Result<()> {
    let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
    if ok {
        Ok(())
    } else {
        let want = if positive { "above 0" } else { "at least 0" };
        Err(Error::parameter(
            op,
            name,
            v,
            format!("must be finite and {want}"),
        ))
    }
}

/// Checks that `x` is a batch of 3-channel images, as the valid range needs.
fn check_rgb(op: &'static str, x: &Tensor) -> Result<()> {
    crate::support::check_batch(op, x)?;
    if x.size()[1] != 3 {
        return Err(Error::shape(
            op,
            "3-channel images [N, 3, H, W]",
            format!("{:?}", x.size()),
        ));
    }
    Ok(())
}

/// The rows of `x` named by `rows`, as an index tensor on `x`'s device.
fn rows(x: &Tensor, rows: &[i64]) -> Tensor {
    x.index_select(0, &Tensor::from_slice(rows).to_device(x.device()))
}

/// The float kind the syntheses compute in.
const KIND: Kind = Kind::Float;
