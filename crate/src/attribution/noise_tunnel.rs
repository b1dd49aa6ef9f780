//! The noise tunnel over any method: run the method on noisy copies of each
//! image ([`NoiseSamples`]) and keep three estimators of the same samples.
//!
//! - SmoothGrad (Smilkov, Thorat, Kim, Viégas and Wattenberg, "SmoothGrad:
//!   removing noise by adding noise", 2017): the mean `E[g]`;
//! - SG-SQ: the mean square `E[g^2]` (Hooker et al., "A Benchmark for
//!   Interpretability Methods in Deep Neural Networks", NeurIPS 2019);
//! - VarGrad: the variance `E[g^2] - E[g]^2` (Adebayo et al., "Local
//!   Explanation Methods for Deep Neural Networks Lack Sensitivity to
//!   Parameter Values", ICLR workshop 2018), accumulated separately with a
//!   numerically stable pairwise (Chan et al.) update, so the identity
//!   `VarGrad = SG-SQ - SmoothGrad^2` is a check, not a definition.
//!
//! Captum: `NoiseTunnel(method).attribute(x, nt_type=..., nt_samples=n,
//! stdevs=sigma)`; here `sigma` is a fraction of each image's range, as the
//! paper sets it, where Captum takes it absolute. The copies go to the
//! method in batches of `batch_size` ([`Method::attribute_copies`]: the
//! vanilla gradient then scores the target class alone, on the network's
//! fast path for copies). The lab's SmoothGrad is the tunnel over the
//! vanilla gradient: [`smoothgrad`], configured by [`SmoothGradConfig`] (the
//! lab's name for [`TunnelConfig`]).

use tch::{Device, Kind, Tensor};

use super::noise::{NoiseGenerator, NoiseSamples};
use super::{Attributions, Batch, Method, Vanilla};
use crate::error::{Error, Result};
use crate::model::Network;

/// The noise tunnel's parameters, with SmoothGrad's paper's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelConfig {
    /// Noise standard deviation as a fraction of each image's value range
    /// (`max - min` of the preprocessed image). Default 0.15 (Smilkov et al.
    /// found 10-20% best). 0 gives the vanilla gradient.
    pub noise_level: f64,
    /// Number of noisy samples per image. Default 50.
    pub samples: usize,
    /// Seed of the noise generator. Default 0.
    pub seed: u64,
    /// How many noisy copies go through the network at once; bounds memory.
    /// Default 10.
    pub batch_size: usize,
    /// Which generator draws the noise. Default [`NoiseGenerator::Auto`].
    pub generator: NoiseGenerator,
}

/// The lab's name for the noise tunnel's parameters (SmoothGrad: the tunnel
/// over the vanilla gradient).
pub type SmoothGradConfig = TunnelConfig;

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            noise_level: 0.15,
            samples: 50,
            seed: 0,
            batch_size: 10,
            generator: NoiseGenerator::Auto,
        }
    }
}

impl TunnelConfig {
    /// Sets the noise level (fraction of the image's range).
    #[must_use]
    pub fn with_noise_level(mut self, noise_level: f64) -> Self {
        self.noise_level = noise_level;
        self
    }

    /// Sets the number of samples.
    #[must_use]
    pub fn with_samples(mut self, samples: usize) -> Self {
        self.samples = samples;
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the batch size.
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets the noise generator.
    #[must_use]
    pub fn with_generator(mut self, generator: NoiseGenerator) -> Self {
        self.generator = generator;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a negative or non-finite noise level, zero
    /// samples or a batch size of 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.noise_level.is_finite() && self.noise_level >= 0.0) {
            return Err(Error::parameter(
                "SmoothGradConfig",
                "noise_level",
                self.noise_level,
                "must be finite and >= 0",
            ));
        }
        if self.samples == 0 {
            return Err(Error::parameter(
                "SmoothGradConfig",
                "samples",
                0,
                "must be at least 1",
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::parameter(
                "SmoothGradConfig",
                "batch_size",
                0,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl NoiseSamples {
    /// The noise stream for image `index` of a batch, under `config`'s seed,
    /// noise level and generator; `image` is that image, `[1, C, H, W]` or
    /// `[C, H, W]`.
    ///
    /// # Errors
    /// [`Error::Parameter`] for an invalid config or a non-finite image,
    /// [`Error::Shape`] for a wrong shape (the counter-based generator also
    /// needs an even number of values per image).
    pub fn new(image: &Tensor, index: usize, config: &TunnelConfig) -> Result<Self> {
        config.validate()?;
        NoiseSamples::from_parts(
            &NoiseSamples::one_image(image)?,
            index,
            config.noise_level,
            config.seed,
            config.generator,
        )
    }
}

/// What the noise tunnel estimates ([`NoiseTunnel::estimate`],
/// [`smoothgrad`]): three estimators over the same noisy samples, each `[N,
/// C, H, W]` float32.
#[derive(Debug)]
pub struct TunnelEstimates {
    /// SmoothGrad: the mean attribution over the noisy samples (the mean
    /// gradient, over the vanilla gradient).
    pub mean: Tensor,
    /// SG-SQ: the mean of the squared attributions.
    pub mean_square: Tensor,
    /// VarGrad: the (population) variance of the attributions.
    pub variance: Tensor,
    /// The absolute noise standard deviation used for each image.
    pub sigmas: Vec<f64>,
    /// Samples per image.
    pub samples: usize,
}

/// The lab's name for the tunnel's estimates over the vanilla gradient.
pub type SmoothGrad = TunnelEstimates;

/// Which estimator of the noisy samples [`NoiseTunnel`] returns as its
/// attribution (all three come from one pass: [`NoiseTunnel::estimate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Estimator {
    /// The mean (SmoothGrad).
    #[default]
    #[cfg_attr(feature = "cli", value(name = "smoothgrad"))]
    SmoothGrad,
    /// The mean of the squares (SG-SQ).
    #[cfg_attr(feature = "cli", value(name = "smoothgrad-sq"))]
    SmoothGradSq,
    /// The variance (VarGrad).
    #[cfg_attr(feature = "cli", value(name = "vargrad"))]
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
/// use saliency_lab::attribution::{IntegratedGradients, Method, NoiseTunnel, TunnelConfig};
/// # let (model, x, labels): (saliency_lab::Model, tch::Tensor, Vec<i64>) = todo!();
/// // SmoothGrad over Integrated Gradients, 10 samples of 20 steps each.
/// let sg_ig = NoiseTunnel::new(
///     IntegratedGradients::default().with_steps(20),
///     TunnelConfig::default().with_samples(10),
/// );
/// let maps = sg_ig.attribute(&model, &x, &labels)?.values;
/// # Ok::<(), saliency_lab::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseTunnel<M> {
    /// The method run on each noisy copy.
    pub method: M,
    /// Noise level, samples, seed, batch size, generator.
    pub config: TunnelConfig,
    /// What [`Method::attribute`] returns. Default the mean (SmoothGrad).
    pub estimator: Estimator,
}

impl<M: Method> NoiseTunnel<M> {
    /// SmoothGrad (the mean) over `method`, with `config`'s noise.
    #[must_use]
    pub fn new(method: M, config: TunnelConfig) -> Self {
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
    pub fn estimate(
        &self,
        net: &dyn Network,
        x: &Tensor,
        targets: &[i64],
    ) -> Result<TunnelEstimates> {
        self.validate()?;
        self.estimate_batch(net, &Batch::new(self.op(), net, x, targets)?)
    }

    /// [`NoiseTunnel::estimate`] of a checked batch, the config checked.
    fn estimate_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<TunnelEstimates> {
        let (x, targets) = (batch.x(), batch.targets());
        let (mut means, mut squares, mut variances, mut sigmas) = (vec![], vec![], vec![], vec![]);
        for (i, &target) in targets.iter().enumerate() {
            let image = x.narrow(0, i as i64, 1);
            // The batch and the config are checked above, once.
            let mut noise = NoiseSamples::from_parts(
                &image,
                i,
                self.config.noise_level,
                self.config.seed,
                self.config.generator,
            )?;
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
                    let (copies, copy_targets) = (batch.contiguous(), vec![target; k]);
                    self.method
                        .attribute_batch(net, &Batch::checked_already(&copies, &copy_targets))?
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
        Ok(TunnelEstimates {
            mean: Tensor::cat(&means, 0),
            mean_square: Tensor::cat(&squares, 0),
            variance: Tensor::cat(&variances, 0),
            sigmas,
            samples: self.config.samples,
        })
    }
}

impl<M: Method> Method for NoiseTunnel<M> {
    /// A gradient where its method's is (SmoothGrad and the like over the
    /// vanilla gradient).
    fn is_gradient(&self) -> bool {
        self.method.is_gradient()
    }

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

    fn op(&self) -> &'static str {
        "noise_tunnel"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let sg = self.estimate_batch(net, batch)?;
        Ok(Attributions::checked(match self.estimator {
            Estimator::SmoothGrad => sg.mean,
            Estimator::SmoothGradSq => sg.mean_square,
            Estimator::VarGrad => sg.variance,
        }))
    }
}

/// Running mean, sum of squares and M2 (sum of squared deviations) of the
/// gradients of one image, merged batch by batch in double precision.
pub(crate) struct Moments {
    n: f64,
    mean: Tensor,
    sum_sq: Tensor,
    m2: Tensor,
}

impl Moments {
    pub(crate) fn new(like: &Tensor) -> Self {
        let z = || Tensor::zeros(like.size(), (Kind::Double, like.device()));
        Moments {
            n: 0.0,
            mean: z(),
            sum_sq: z(),
            m2: z(),
        }
    }

    /// Adds a batch of gradients `[b, C, H, W]` (Chan, Golub and LeVeque's
    /// pairwise update).
    pub(crate) fn add(&mut self, g: &Tensor) {
        // Per-batch sums in single precision (a few samples each), merged
        // across batches in double precision.
        let nb = g.size()[0] as f64;
        let sum_b = g.sum_dim_intlist(0, true, Kind::Float);
        let mean_b32 = &sum_b / nb;
        let m2_b = (g - &mean_b32)
            .square()
            .sum_dim_intlist(0, true, Kind::Float)
            .to_kind(Kind::Double);
        self.sum_sq += g
            .square()
            .sum_dim_intlist(0, true, Kind::Float)
            .to_kind(Kind::Double);
        let mean_b = sum_b.to_kind(Kind::Double) / nb;
        let n = self.n + nb;
        let delta = &mean_b - &self.mean;
        self.m2 = &self.m2 + m2_b + delta.square() * (self.n * nb / n);
        self.mean = &self.mean + delta * (nb / n);
        self.n = n;
    }

    /// The mean, the mean square and the (population) variance, in single
    /// precision.
    pub(crate) fn estimates(self) -> (Tensor, Tensor, Tensor) {
        (
            self.mean.to_kind(Kind::Float),
            (self.sum_sq / self.n).to_kind(Kind::Float),
            (self.m2 / self.n).to_kind(Kind::Float),
        )
    }
}

/// SmoothGrad, SG-SQ and VarGrad of the vanilla gradient of `net` for a
/// preprocessed batch `x` `[N, C, H, W]` and one target class per image, over
/// `config.samples` noisy copies per image run `config.batch_size` at a time:
/// [`NoiseTunnel`] over [`Vanilla`]. The copies go through the network's fast
/// path for copies where it has one ([`FastPaths`](crate::model::FastPaths):
/// a [`Model`] from [`squeezenet1_1`] runs them in NHWC layout on the CPU,
/// scoring the target class alone), else the plain path (a `&dyn ModuleT`:
/// the same numbers to rounding, slower).
///
/// [`Model`]: crate::Model
/// [`squeezenet1_1`]: crate::squeezenet1_1
///
/// # Errors
/// As [`vanilla_gradient`](super::vanilla_gradient), and
/// [`Error::Parameter`] for an invalid config.
///
/// ```no_run
/// use saliency_lab::attribution::{smoothgrad, SmoothGradConfig};
/// # let (model, x, labels): (saliency_lab::Model, tch::Tensor, Vec<i64>) = todo!();
/// let sg = smoothgrad(&model, &x, &labels, &SmoothGradConfig::default().with_samples(25))?;
/// let map = saliency_lab::attribution::max_abs(&sg.mean)?;
/// # Ok::<(), saliency_lab::Error>(())
/// ```
pub fn smoothgrad<N: Network + ?Sized>(
    net: &N,
    x: &Tensor,
    targets: &[i64],
    config: &SmoothGradConfig,
) -> Result<TunnelEstimates> {
    NoiseTunnel::new(Vanilla, config.clone()).estimate(&net, x, targets)
}

impl TunnelEstimates {
    /// Moves the three estimators to `device`.
    #[must_use]
    pub fn to_device(self, device: Device) -> Self {
        TunnelEstimates {
            mean: self.mean.to_device(device),
            mean_square: self.mean_square.to_device(device),
            variance: self.variance.to_device(device),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_bad_values() {
        let c = SmoothGradConfig::default();
        for (bad, name) in [
            (c.clone().with_noise_level(-0.1), "noise_level"),
            (c.clone().with_noise_level(f64::NAN), "noise_level"),
            (c.clone().with_samples(0), "samples"),
            (c.clone().with_batch_size(0), "batch_size"),
        ] {
            let msg = bad.validate().unwrap_err().to_string();
            assert!(msg.contains(name), "{msg}");
        }
        assert!(c.validate().is_ok());
    }

    #[test]
    fn moments_match_two_pass_formulas() {
        // Gradients 1, 2, 3, 6 in batches of 3 and 1: mean 3, E[g^2] 12.5, var 3.5.
        let g = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 6.0]).view([4, 1, 1, 1]);
        let mut m = Moments::new(&g.narrow(0, 0, 1));
        m.add(&g.narrow(0, 0, 3));
        m.add(&g.narrow(0, 3, 1));
        assert!((m.mean.double_value(&[0, 0, 0, 0]) - 3.0).abs() < 1e-12);
        assert!((m.sum_sq.double_value(&[0, 0, 0, 0]) / 4.0 - 12.5).abs() < 1e-12);
        assert!((m.m2.double_value(&[0, 0, 0, 0]) / 4.0 - 3.5).abs() < 1e-12);
    }
}
