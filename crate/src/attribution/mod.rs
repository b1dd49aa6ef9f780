//! Attribution methods: how much each input pixel matters to the score of a
//! class, all behind one trait, [`Method`].
//!
//! | method | type | paper | Captum's equivalent |
//! | --- | --- | --- | --- |
//! | vanilla gradient | [`Vanilla`], [`vanilla_gradient`] | Simonyan et al. 2014, "Deep Inside Convolutional Networks" | `Saliency(abs=False)` |
//! | Input x Gradient | [`InputXGradient`] | Shrikumar et al. 2016, "Not Just a Black Box" | `InputXGradient` |
//! | Integrated Gradients | [`IntegratedGradients`] | Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks" | `IntegratedGradients` |
//! | Guided Backprop | [`GuidedBackprop`] | Springenberg et al. 2015, "Striving for Simplicity" | `GuidedBackprop` |
//! | Deconvolution | [`Deconvolution`] | Zeiler and Fergus 2014, "Visualizing and Understanding Convolutional Networks" | `Deconvolution` |
//! | Grad-CAM | [`GradCam`] | Selvaraju et al. 2017, "Grad-CAM" | `LayerGradCam` + `LayerAttribution.interpolate` |
//! | Guided Grad-CAM | [`GuidedGradCam`] | Selvaraju et al. 2017 | `GuidedGradCam` |
//! | Occlusion | [`Occlusion`] | Zeiler and Fergus 2014, "Visualizing and Understanding Convolutional Networks" | `Occlusion` |
//! | noise tunnel: SmoothGrad, SG-SQ, VarGrad over any method | [`NoiseTunnel`], [`smoothgrad`] | Smilkov et al. 2017; Hooker et al. 2019; Adebayo et al. 2018 | `NoiseTunnel` |
//! | the lab's blur average | [`blur_average`] | the lab's sample answer (not SmoothGrad) | - |
//!
//! Every method takes a [`Network`], a preprocessed batch `[N, 3, H, W]` and
//! one target class per image, and returns the attribution at the input's
//! resolution, `[N, 3, H, W]` (`[N, 1, H, W]` for Grad-CAM), with
//! [`Warning`]s for maps that say nothing (all zeros, NaN). Methods compose:
//! SmoothGrad over Integrated Gradients is
//! `NoiseTunnel::new(IntegratedGradients::default(), TunnelConfig::default())`.
//! The 2-D maps (channel max, max of abs, ...) are in [`summary`].
//!
//! A new method is one file: a config struct with the paper's defaults and
//! `with_*` setters, and an `impl Method` that writes `attribute_batch` (the
//! input arrives checked, once, as a [`Batch`]; the parameters too, by
//! `validate`); [`crate::registry`] gives it its name.

pub mod blur_average;
pub mod deconvolution;
pub mod deeplift;
pub mod grad_cam;
pub mod gradient_shap;
pub mod guided_backprop;
pub mod input_x_gradient;
pub mod integrated_gradients;
pub mod lrp;
#[cfg(feature = "noise-tunnel")]
pub mod noise;
#[cfg(feature = "noise-tunnel")]
pub mod noise_tunnel;
pub mod occlusion;
pub mod propagation;
pub mod summary;
pub mod vanilla;

pub use blur_average::{blur_average, BlurAverage, LAB_SIGMAS};
pub use deconvolution::{deconv_relu, Deconvolution};
pub use deeplift::{completeness_delta, DeepLift, DeepLiftShap, PoolingRule};
pub use grad_cam::{GradCam, GuidedGradCam};
pub use gradient_shap::{Draws, GradientShap};
pub use guided_backprop::GuidedBackprop;
pub use input_x_gradient::InputXGradient;
pub use integrated_gradients::{Baseline, IntegratedGradients, Rule};
pub use lrp::{Lrp, LrpRule};
#[cfg(feature = "noise-tunnel")]
pub use noise::{NoiseGenerator, NoiseSamples};
#[cfg(feature = "noise-tunnel")]
pub use noise_tunnel::{
    smoothgrad, Estimator, NoiseTunnel, SmoothGrad, SmoothGradConfig, TunnelConfig, TunnelEstimates,
};
pub use occlusion::Occlusion;
pub use summary::{abs, l2, max, max_abs, mean_abs, Summary};
pub use vanilla::{vanilla_gradient, Vanilla};

use tch::{Kind, Tensor};

use crate::error::Result;
use crate::model::check_network_classes as check_classes;
use crate::model::copies_gradient;
use crate::model::Network;
use crate::support::{check_batch, check_count, count_non_finite};

/// An attribution method (see the module's table).
///
/// `attribute` explains a batch of different images, each for its own class:
/// it checks the method's parameters ([`Method::validate`]) and the input
/// once, at the door ([`Batch::new`]), then calls `attribute_batch`, which
/// an implementation writes and which never checks them again;
/// `attribute_copies` explains a batch of copies of one image (noisy samples,
/// say) for one class, which a method may do faster. Errors, never panics,
/// on bad input.
pub trait Method {
    /// The method's name, as the command line spells it
    /// (`integrated-gradients`).
    fn name(&self) -> String;

    /// The name its errors give the operation (`integrated_gradients`).
    fn op(&self) -> &'static str {
        "attribute"
    }

    /// Checks the method's parameters.
    ///
    /// # Errors
    /// [`crate::Error::Parameter`] naming the parameter that is out of range.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// The attribution of each image of `x` `[N, C, H, W]` (preprocessed) for
    /// its class in `targets`.
    ///
    /// # Errors
    /// [`crate::Error::Shape`] for a batch that is not `[N, C, H, W]` or a
    /// target count that is not `N`, [`crate::Error::Parameter`] for NaN in
    /// `x`, a target outside the network's classes or an invalid parameter,
    /// [`crate::Error::Unsupported`] where the method needs to look inside a
    /// network that is opaque.
    fn attribute(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Attributions> {
        self.validate()?;
        self.attribute_batch(net, &Batch::new(self.op(), net, x, targets)?)
    }

    /// [`Method::attribute`] of a batch checked at the door, with the
    /// method's parameters checked: what an implementation writes.
    ///
    /// # Errors
    /// As [`Method::attribute`], for what only the method can check (a
    /// parameter against the input's size, a network it cannot look
    /// inside).
    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions>;

    /// Roughly how many forward passes one image costs (1 for the gradient
    /// methods; Integrated Gradients' steps, Occlusion's windows, a tunnel's
    /// samples times its method's): for progress reports and batching.
    fn passes_per_image(&self) -> usize {
        1
    }

    /// Whether the attribution is a gradient of the score (the vanilla
    /// gradient, and the noise tunnel over it): the `maps` tool then also
    /// writes it as `grad.npy`. Default: false.
    fn is_gradient(&self) -> bool {
        false
    }

    /// The attributions of a batch of copies of one image `[k, C, H, W]`
    /// (already checked), all for class `target` (already checked). The
    /// default calls [`Method::attribute_batch`].
    ///
    /// # Errors
    /// As [`Method::attribute`].
    fn attribute_copies(&self, net: &dyn Network, copies: &Tensor, target: i64) -> Result<Tensor> {
        let targets = vec![target; copies.size()[0] as usize];
        Ok(self
            .attribute_batch(net, &Batch::checked_already(copies, &targets))?
            .values)
    }
}

/// A batch of preprocessed images `[N, C, H, W]` and one target class per
/// image, checked once, at the door ([`Batch::new`]): a non-empty 4-D float
/// tensor of finite values (one pass over it), one target per image, each
/// one of the network's classes. Every [`Method`] takes one; a method that
/// calls another hands it on.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    x: &'a Tensor,
    targets: &'a [i64],
}

impl<'a> Batch<'a> {
    /// Checks `x` and `targets` for `net`; `op` names the operation in an
    /// error.
    ///
    /// # Errors
    /// [`crate::Error::Shape`] for a batch that is not `[N, C, H, W]` floats
    /// or a target count that is not `N`, [`crate::Error::Parameter`] for
    /// NaN or infinity in `x` or a target outside the network's classes
    /// (where the network does not say how many it has: one forward pass
    /// finds out).
    pub fn new(
        op: &'static str,
        net: &dyn Network,
        x: &'a Tensor,
        targets: &'a [i64],
    ) -> Result<Self> {
        check_batch(op, x)?;
        check_count(op, x.size()[0], targets)?;
        check_classes(op, net, x, targets)?;
        Ok(Batch { x, targets })
    }

    /// A batch made inside the crate from one already checked (copies of a
    /// checked image, a tunnel's noisy samples of it): not checked again.
    pub(crate) fn checked_already(x: &'a Tensor, targets: &'a [i64]) -> Self {
        Batch { x, targets }
    }

    /// The images `[N, C, H, W]`.
    pub fn x(&self) -> &'a Tensor {
        self.x
    }

    /// One target class per image.
    #[must_use]
    pub fn targets(&self) -> &'a [i64] {
        self.targets
    }

    /// The number of images.
    #[must_use]
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Never true for a checked batch (kept for clippy's `len` rule).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// What a [`Method`] returns: the attribution and what is wrong with it.
#[derive(Debug)]
pub struct Attributions {
    /// The attribution `[N, C, H, W]` (`C` = 1 for Grad-CAM).
    pub values: Tensor,
    /// Maps that say nothing, one warning per image concerned.
    pub warnings: Vec<Warning>,
}

impl Attributions {
    /// `values` with the warnings [`Warning::scan`] finds.
    #[must_use]
    pub fn checked(values: Tensor) -> Self {
        let warnings = Warning::scan(&values);
        Attributions { values, warnings }
    }
}

/// A map that says nothing about its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The image's index in the batch.
    pub image: usize,
    /// What is wrong.
    pub kind: WarningKind,
}

/// What is wrong with a map.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// Every value is zero: the class's score does not change near the input
    /// (a ReLU that is off everywhere, a saturated class, ...).
    AllZero,
    /// Some values are NaN or infinite (this many).
    NonFinite(usize),
    /// Grad-CAM's ReLU removed everything: no part of the layer speaks for
    /// the class (the map before the ReLU was negative wherever it was not
    /// zero).
    ReluRemovedAll,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.kind {
            WarningKind::AllZero => {
                "the map is all zeros: the class's score does not change near this input".to_string()
            }
            WarningKind::NonFinite(n) => format!("the map has {n} NaN/inf value(s)"),
            WarningKind::ReluRemovedAll => {
                "Grad-CAM's ReLU removed the whole map: the layer's evidence is all against the class"
                    .to_string()
            }
        };
        write!(f, "warning: image {}: {what}", self.image)
    }
}

impl Warning {
    /// The warnings for a batch of maps `[N, ...]`: all zeros, NaN/inf.
    #[must_use]
    pub fn scan(values: &Tensor) -> Vec<Warning> {
        let n = values.size().first().copied().unwrap_or(0);
        if values.numel() == 0 {
            return Vec::new();
        }
        let flat = values.detach().reshape([n, -1]);
        // One pass over the maps: a row's minimum and maximum are NaN where
        // it holds a NaN, infinite where it holds an infinity, and both zero
        // where it is all zeros. (`isfinite` and `ne` took nine passes, 7% of
        // Guided Grad-CAM's time; `crate/benches/LOG.md`.)
        let (min, max) = flat.aminmax(1, false);
        let row = |t: Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap_or_default();
        let mut out = Vec::new();
        for (i, (lo, hi)) in row(min).into_iter().zip(row(max)).enumerate() {
            if !(lo.is_finite() && hi.is_finite()) {
                out.push(Warning {
                    image: i,
                    kind: WarningKind::NonFinite(count_non_finite(&flat.get(i as i64)) as usize),
                });
            } else if lo == 0.0 && hi == 0.0 {
                out.push(Warning {
                    image: i,
                    kind: WarningKind::AllZero,
                });
            }
        }
        out
    }
}

/// The gradient of each image's target score with respect to the image, on
/// the network's fast path where it has one (the lab's
/// `compute_saliency_maps`). On the CPU in chunks of a few images (the same
/// numbers, faster).
fn gradient(net: &dyn Network, batch: &Batch<'_>) -> Result<Tensor> {
    crate::support::in_chunks(batch.x(), batch.targets(), |x, t| {
        crate::model::target_gradient(net, x, t)
    })
}

/// A method behind a reference, or in a box (so that a method chosen at run
/// time goes in a [`NoiseTunnel`]), is the method.
macro_rules! delegate_method {
    ($($pointer:ty),*) => {$(
        impl<M: Method + ?Sized> Method for $pointer {
            fn name(&self) -> String {
                (**self).name()
            }
            fn op(&self) -> &'static str {
                (**self).op()
            }
            fn validate(&self) -> Result<()> {
                (**self).validate()
            }
            fn attribute(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Attributions> {
                (**self).attribute(net, x, targets)
            }
            fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
                (**self).attribute_batch(net, batch)
            }
            fn passes_per_image(&self) -> usize {
                (**self).passes_per_image()
            }
            fn is_gradient(&self) -> bool {
                (**self).is_gradient()
            }
            fn attribute_copies(&self, net: &dyn Network, copies: &Tensor, target: i64) -> Result<Tensor> {
                (**self).attribute_copies(net, copies, target)
            }
        }
    )*};
}

delegate_method!(&M, Box<M>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_counts_nans_and_infinities_and_finds_all_zero_maps() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        let maps = Tensor::from_slice(&[
            1.0, -2.0, 0.0, 3.0, // fine
            0.0, -0.0, 0.0, 0.0, // all zeros
            nan, 1.0, inf, -inf, // three
            nan, nan, 0.0, 0.0, // two, the rest zeros
            -inf, 0.0, 0.0, 0.0, // one
            0.0, 0.0, 1e-30, 0.0, // fine
        ])
        .view([6, 1, 2, 2]);
        let found: Vec<_> = Warning::scan(&maps)
            .into_iter()
            .map(|w| (w.image, w.kind))
            .collect();
        assert_eq!(
            found,
            [
                (1, WarningKind::AllZero),
                (2, WarningKind::NonFinite(3)),
                (3, WarningKind::NonFinite(2)),
                (4, WarningKind::NonFinite(1)),
            ]
        );
        let err = crate::support::check_finite("test", &maps.get(2)).unwrap_err();
        assert!(err.to_string().contains("3 NaN/inf value(s)"), "{err}");
        assert!(crate::support::check_finite("test", &maps.get(5)).is_ok());
    }
}
