//! The noise tunnel over any method (Smilkov et al. 2017 for the mean,
//! SmoothGrad; Hooker et al. 2019 for the mean square, SG-SQ; Adebayo et al.
//! 2018 for the variance, VarGrad): run a method on noisy copies of each
//! image and average. Captum: `NoiseTunnel(method).attribute(x,
//! nt_type=..., nt_samples=n, stdevs=sigma)`; here `sigma` is a fraction of
//! each image's range, as the paper sets it, where Captum takes it absolute.
//!
//! The noise is [`NoiseSamples`]' (seeded; sample `j` of image `i` depends
//! only on the seed, `i` and `j`), the three estimators come from one pass
//! over the samples, and the copies go to the method in batches of
//! `batch_size` ([`Method::attribute_copies`]: the vanilla gradient then
//! scores the target class alone, in the network's layout for copies).

use tch::Tensor;

use super::smoothgrad::Moments;
use super::{
    check_classes, check_input, Attributions, Method, NoiseSamples, SmoothGrad, SmoothGradConfig,
};
use crate::error::Result;
use crate::model::Network;

/// Which estimator of the noisy samples [`NoiseTunnel`] returns as its
/// attribution (all three come from one pass: [`NoiseTunnel::estimate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Estimator {
    /// The mean (SmoothGrad).
    #[default]
    SmoothGrad,
    /// The mean of the squares (SG-SQ).
    SmoothGradSq,
    /// The variance (VarGrad).
    VarGrad,
}

impl Estimator {
    /// The command line's name (`smoothgrad`, `smoothgrad-sq`, `vargrad`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Estimator::SmoothGrad => "smoothgrad",
            Estimator::SmoothGradSq => "smoothgrad-sq",
            Estimator::VarGrad => "vargrad",
        }
    }
}

/// A noise tunnel over `method`.
///
/// ```no_run
/// use saliency_lab::attribution::{IntegratedGradients, Method, NoiseTunnel, SmoothGradConfig};
/// # let (model, x, labels): (saliency_lab::Model, tch::Tensor, Vec<i64>) = todo!();
/// // SmoothGrad over Integrated Gradients, 10 samples of 20 steps each.
/// let sg_ig = NoiseTunnel::new(
///     IntegratedGradients::default().with_steps(20),
///     SmoothGradConfig::default().with_samples(10),
/// );
/// let maps = sg_ig.attribute(&model, &x, &labels)?.values;
/// # Ok::<(), saliency_lab::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseTunnel<M> {
    /// The method run on each noisy copy.
    pub method: M,
    /// Noise level, samples, seed, batch size, generator.
    pub config: SmoothGradConfig,
    /// What [`Method::attribute`] returns. Default the mean (SmoothGrad).
    pub estimator: Estimator,
}

impl<M: Method> NoiseTunnel<M> {
    /// SmoothGrad (the mean) over `method`, with `config`'s noise.
    #[must_use]
    pub fn new(method: M, config: SmoothGradConfig) -> Self {
        NoiseTunnel {
            method,
            config,
            estimator: Estimator::SmoothGrad,
        }
    }

    /// Sets the estimator [`Method::attribute`] returns.
    #[must_use]
    pub fn with_estimator(mut self, estimator: Estimator) -> Self {
        self.estimator = estimator;
        self
    }

    /// All three estimators (each `[N, C, H, W]`) over the same noisy
    /// samples.
    ///
    /// # Errors
    /// As the method's [`Method::attribute`], and
    /// [`crate::Error::Parameter`] for an invalid config.
    pub fn estimate(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<SmoothGrad> {
        const OP: &str = "noise_tunnel";
        self.config.validate()?;
        self.method.validate()?;
        check_input(OP, x, targets)?;
        check_classes(OP, net, x, targets)?;
        let (mut means, mut squares, mut variances, mut sigmas) = (vec![], vec![], vec![], vec![]);
        for (i, &target) in targets.iter().enumerate() {
            let image = x.narrow(0, i as i64, 1);
            let mut noise = NoiseSamples::new(&image, i, &self.config)?;
            let mut moments: Option<Moments> = None;
            let mut done = 0;
            while done < self.config.samples {
                let k = self.config.batch_size.min(self.config.samples - done);
                let batch = noise.next_batch(k);
                // Without noise the copies are the image itself: the method's
                // own path on them gives the method exactly (where max-pooling
                // meets ties, a faster layout could route a gradient to
                // another, equally valid, position; noisy inputs have none).
                let g = if noise.sigma() > 0.0 {
                    self.method.attribute_copies(net, &batch, target)?
                } else {
                    self.method
                        .attribute(net, &batch.contiguous(), &vec![target; k])?
                        .values
                };
                moments
                    .get_or_insert_with(|| Moments::new(&g.narrow(0, 0, 1)))
                    .add(&g);
                done += k;
            }
            let m = moments.expect("at least one sample (the config is validated)");
            let (mean, square, variance) = m.estimates();
            means.push(mean);
            squares.push(square);
            variances.push(variance);
            sigmas.push(noise.sigma());
        }
        Ok(SmoothGrad {
            mean: Tensor::cat(&means, 0),
            mean_square: Tensor::cat(&squares, 0),
            variance: Tensor::cat(&variances, 0),
            sigmas,
            samples: self.config.samples,
        })
    }
}

impl<M: Method> Method for NoiseTunnel<M> {
    fn name(&self) -> String {
        let inner = self.method.name();
        if inner == "vanilla" {
            self.estimator.name().into()
        } else {
            format!("{}({inner})", self.estimator.name())
        }
    }

    fn validate(&self) -> Result<()> {
        self.config.validate()?;
        self.method.validate()
    }

    fn passes_per_image(&self) -> usize {
        self.config.samples * self.method.passes_per_image()
    }

    fn attribute(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Attributions> {
        let sg = self.estimate(net, x, targets)?;
        Ok(Attributions::checked(match self.estimator {
            Estimator::SmoothGrad => sg.mean,
            Estimator::SmoothGradSq => sg.mean_square,
            Estimator::VarGrad => sg.variance,
        }))
    }
}
