//! Can a map be trusted? Sanity checks and faithfulness metrics for the
//! attribution methods.
//!
//! | question | here | paper |
//! | --- | --- | --- |
//! | does the map change when the model's weights are randomised? | [`Randomisation`] | Adebayo et al. 2018, "Sanity Checks for Saliency Maps" |
//! | does deleting the pixels it ranks first destroy the prediction? | [`CausalMetric::deletion`] | Petsiuk et al. 2018, "RISE" |
//! | does inserting them first restore it? | [`CausalMetric::insertion`] | Petsiuk et al. 2018 |
//! | how does a map compare with maps that know nothing of the model? | [`controls`]: random, centre Gaussian, edges | Adebayo et al. 2018 |
//! | does the map change with the class it explains? | [`ClassSensitivity`] | Sixt et al. 2020, "When Explanations Lie" |
//! | how many noisy samples does the noise tunnel need? | [`tunnel_convergence`] | Smilkov et al. 2017 |
//!
//! The similarities are scipy's `spearmanr` and scikit-image's
//! `structural_similarity` ([`similarity`]); deletion and insertion follow
//! RISE's public `evaluation.py` step for step ([`causal`]).

#[cfg(feature = "causal-metrics")]
pub mod causal;
pub mod controls;
#[cfg(feature = "noise-tunnel")]
mod convergence;
pub mod randomisation;
pub mod sensitivity;
pub mod similarity;

#[cfg(feature = "causal-metrics")]
pub use causal::{auc, aucs, Causal, CausalMetric};
pub use controls::{CentreGaussian, Edges, RandomMap};
#[cfg(feature = "noise-tunnel")]
pub use convergence::tunnel_convergence;
pub use randomisation::{Order, Randomisation, RandomisationResult};
pub use sensitivity::{defined_mean, ClassSensitivity, ClassSensitivityResult, OtherClass};
pub use similarity::{describe, normalise, spearman, ssim, UNDEFINED};
