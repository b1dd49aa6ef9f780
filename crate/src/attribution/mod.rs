//! Gradient attributions: how much each input pixel moves the score of a
//! class.
//!
//! | method | module | paper |
//! | --- | --- | --- |
//! | vanilla gradient | [`vanilla`] | Simonyan et al. 2014, "Deep Inside Convolutional Networks" |
//! | SmoothGrad, SG-SQ, VarGrad | [`smoothgrad`] | Smilkov et al. 2017; Hooker et al. 2019; Adebayo et al. 2018 |
//! | the lab's blur average | [`blur_average`] | the lab's sample answer (not SmoothGrad) |
//!
//! Every method returns the full multi-channel gradient `[N, 3, H, W]`; the 2-D
//! maps (channel max, max of abs, ...) are in [`summary`]. All methods take
//! any [`tch::nn::ModuleT`].

pub mod blur_average;
pub mod smoothgrad;
pub mod summary;
pub mod vanilla;

pub use blur_average::{blur_average, BlurAverage, LAB_SIGMAS};
pub use smoothgrad::{smoothgrad, NoiseGenerator, NoiseSamples, SmoothGrad, SmoothGradConfig};
pub use summary::{abs, l2, max, max_abs, mean_abs, Summary};
pub use vanilla::vanilla_gradient;
