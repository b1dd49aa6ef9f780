//! Grad-CAM and Guided Grad-CAM (Selvaraju, Cogswell, Das, Vedantam, Parikh
//! and Batra, "Grad-CAM: Visual Explanations from Deep Networks via
//! Gradient-based Localization", ICCV 2017).
//!
//! Grad-CAM weighs each channel of a layer's output `A` by the mean gradient
//! of the target score over that channel, sums, keeps the positive part and
//! upsamples to the input: `relu(sum_k mean_hw(dS/dA_k) A_k)`. Captum:
//! `LayerGradCam(model, layer).attribute(x, y, relu_attributions=True)` then
//! `LayerAttribution.interpolate(..., (H, W), "bilinear")`.
//!
//! Guided Grad-CAM multiplies Guided Backprop by Grad-CAM upsampled to the
//! input with nearest-neighbour interpolation (Captum: `GuidedGradCam`, whose
//! default that is).
//!
//! Both need a named layer of the network (default: SqueezeNet's last Fire
//! module, `features.12`, 13 x 13) of a network that can be looked inside
//! ([`Network::inspect`]: SqueezeNet, networks built from the crate's
//! [`layers`](crate::model::layers)). SqueezeNet's pass runs on NHWC weights
//! on the CPU under [`Numerics::Fast`](crate::model::Numerics): equal to
//! PyTorch's to rounding from `features.9` up, and below a max-pooling flat
//! image regions may route the gradient through another, equally valid,
//! position (see [`Numerics`](crate::model::Numerics)).

use tch::{Kind, Tensor};

use super::guided_backprop::inspect;
use super::{Attributions, Batch, GuidedBackprop, Method, Warning, WarningKind};
use crate::error::{Error, Result};
use crate::model::layers::check_layer;
use crate::model::{Network, Pass};
use crate::support::{catch_libtorch, in_chunks, target_score_sum};

/// SqueezeNet 1.1's last Fire module, Grad-CAM's default layer.
pub const DEFAULT_LAYER: &str = "features.12";

/// How the layer-resolution map is brought to the input's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upsample {
    /// Bilinear (`align_corners=False`), Grad-CAM's usual choice.
    #[default]
    Bilinear,
    /// Nearest neighbour (Guided Grad-CAM's, in Captum).
    Nearest,
}

/// Grad-CAM's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GradCam {
    /// The layer whose output is weighed (`features.12`).
    pub layer: String,
    /// Keep only the positive part (the paper's ReLU). Default true.
    pub relu: bool,
    /// Upsampling to the input. Default bilinear.
    pub upsample: Upsample,
}

impl Default for GradCam {
    fn default() -> Self {
        GradCam {
            layer: DEFAULT_LAYER.into(),
            relu: true,
            upsample: Upsample::Bilinear,
        }
    }
}

impl GradCam {
    /// Sets the layer.
    #[must_use]
    pub fn with_layer(mut self, layer: impl Into<String>) -> Self {
        self.layer = layer.into();
        self
    }

    /// Sets whether to keep only the positive part.
    #[must_use]
    pub fn with_relu(mut self, relu: bool) -> Self {
        self.relu = relu;
        self
    }

    /// Sets the upsampling.
    #[must_use]
    pub fn with_upsample(mut self, upsample: Upsample) -> Self {
        self.upsample = upsample;
        self
    }

    /// The class activation maps before the ReLU and the upsampling, `[N, 1,
    /// h, w]` at the layer's resolution.
    ///
    /// # Errors
    /// As [`Method::attribute`]; [`Error::Parameter`] for a layer the
    /// network does not have.
    pub fn raw_maps(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Tensor> {
        self.raw_maps_of(net, &Batch::new(self.op(), net, x, targets)?)
    }

    /// [`GradCam::raw_maps`] of a checked batch.
    fn raw_maps_of(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Tensor> {
        let op = self.op();
        let view = inspect(op, net)?;
        check_layer(op, &self.layer, &view.layer_names())?;
        in_chunks(batch.x(), batch.targets(), |x, t| {
            let mut pass = Pass::new().capture(self.layer.clone());
            let logits = catch_libtorch(x, || view.logits_traced(x, &mut pass))?;
            let a = pass
                .captured()
                .ok_or_else(|| {
                    Error::parameter(op, "layer", &self.layer, "the pass never reached it")
                })?
                .shallow_clone();
            if a.dim() != 4 {
                return Err(Error::shape(
                    op,
                    "a layer with a spatial output [N, K, h, w]",
                    format!("{} gives {:?}", self.layer, a.size()),
                ));
            }
            let score = target_score_sum(&logits, t)?;
            let g = Tensor::f_run_backward(&[score], &[&a], false, false)?.remove(0);
            let weights = g.mean_dim([2i64, 3].as_slice(), true, Kind::Float);
            Ok((weights * a.detach()).sum_dim_intlist(1, true, Kind::Float))
        })
    }
}

/// The warnings for Grad-CAM maps before (`raw`) and after the ReLU.
fn cam_warnings(raw: &Tensor, relu: bool) -> Vec<Warning> {
    let mut warnings = Warning::scan(raw);
    if relu {
        let removed = Warning::scan(&raw.relu());
        for w in removed {
            if w.kind == WarningKind::AllZero && !warnings.iter().any(|v| v.image == w.image) {
                warnings.push(Warning {
                    image: w.image,
                    kind: WarningKind::ReluRemovedAll,
                });
            }
        }
    }
    warnings.sort_by_key(|w| w.image);
    warnings
}

fn upsample(maps: &Tensor, size: &[i64], how: Upsample) -> Tensor {
    let out = [size[2], size[3]];
    match how {
        Upsample::Bilinear => maps.upsample_bilinear2d(out, false, None, None),
        Upsample::Nearest => maps.upsample_nearest2d(out, None, None),
    }
}

impl Method for GradCam {
    fn name(&self) -> String {
        "grad-cam".into()
    }

    fn op(&self) -> &'static str {
        "grad_cam"
    }

    /// `[N, 1, H, W]`.
    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let raw = self.raw_maps_of(net, batch)?;
        let warnings = cam_warnings(&raw, self.relu);
        let maps = if self.relu { raw.relu() } else { raw };
        Ok(Attributions {
            values: upsample(&maps, &batch.x().size(), self.upsample),
            warnings,
        })
    }
}

/// Guided Grad-CAM: Guided Backprop times Grad-CAM (with its ReLU),
/// upsampled by nearest neighbour, `[N, C, H, W]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuidedGradCam {
    /// The layer of the Grad-CAM part (`features.12`).
    pub layer: String,
}

impl Default for GuidedGradCam {
    fn default() -> Self {
        GuidedGradCam {
            layer: DEFAULT_LAYER.into(),
        }
    }
}

impl GuidedGradCam {
    /// Sets the layer.
    #[must_use]
    pub fn with_layer(mut self, layer: impl Into<String>) -> Self {
        self.layer = layer.into();
        self
    }
}

impl Method for GuidedGradCam {
    fn name(&self) -> String {
        "guided-grad-cam".into()
    }

    fn op(&self) -> &'static str {
        "guided_grad_cam"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let cam = GradCam {
            layer: self.layer.clone(),
            ..GradCam::default()
        };
        let raw = cam.raw_maps_of(net, batch)?;
        // The same batch, checked once: Guided Backprop's values (its
        // warnings are the product's, found below).
        let guided = GuidedBackprop.attribute_batch(net, batch)?.values;
        let values = guided * upsample(&raw.relu(), &batch.x().size(), Upsample::Nearest);
        let mut warnings = cam_warnings(&raw, true);
        for w in Warning::scan(&values) {
            if !warnings.iter().any(|v| v.image == w.image) {
                warnings.push(w);
            }
        }
        warnings.sort_by_key(|w| w.image);
        Ok(Attributions { values, warnings })
    }
}
