//! GradientShap (Lundberg and Lee, "A Unified Approach to Interpreting Model
//! Predictions", NeurIPS 2017; Captum's `GradientShap`): an estimate of
//! SHAP values as the expected gradient times the input's difference from a
//! baseline, over baselines drawn from a set, points drawn uniformly on the
//! path from the baseline to the input, and Gaussian noise on the input:
//!
//! `GS(x) = mean_k (x + n_k - b_k) * grad F(b_k + a_k (x + n_k - b_k))`,
//!
//! `b_k` drawn from the baselines, `a_k` uniform in `[0, 1)`, `n_k`
//! Gaussian with standard deviation `stdev` (Captum's `stdevs`). Its
//! expectation is Integrated Gradients averaged over the baselines (with
//! the noise): a Monte Carlo estimate, compared with Captum's as two
//! estimates are, and exactly where both are given the same draws
//! ([`GradientShap::with_draws`]).
//!
//! The draws depend only on the seed and the image's index in the batch
//! (a ChaCha8 stream per image, as the noise tunnel's), never on the batch
//! size or on the other images.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Kind, Tensor};

use super::{copies_gradient, Attributions, Batch, DeepLiftShap, Method};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::support::check_finite;

/// What GradientShap draws for each image and sample: the baseline, the
/// point on the path, the noise.
#[derive(Debug)]
pub struct Draws {
    /// Each sample's baseline (an index into the baselines) `[N, K]`, int64.
    pub indices: Tensor,
    /// Each sample's point on the path, in `[0, 1)`, `[N, K]`, float.
    pub alphas: Tensor,
    /// Each sample's noise `[N, K, C, H, W]`; `None`: no noise.
    pub noise: Option<Tensor>,
}

impl Clone for Draws {
    fn clone(&self) -> Self {
        Draws {
            indices: self.indices.shallow_clone(),
            alphas: self.alphas.shallow_clone(),
            noise: self.noise.as_ref().map(Tensor::shallow_clone),
        }
    }
}

/// GradientShap's parameters, Captum's defaults.
#[derive(Debug, Default)]
pub struct GradientShap {
    /// Samples per image. Default 5 (Captum's `n_samples`).
    pub samples: usize,
    /// The noise's standard deviation, in preprocessed units. Default 0
    /// (Captum's `stdevs`).
    pub stdev: f64,
    /// The baselines `[B, C, H, W]`, shared by every image; `None`: each
    /// image's standard baselines (zeros, black, the image blurred:
    /// [`DeepLiftShap::standard_baselines`]).
    pub baselines: Option<Tensor>,
    /// The seed of the draws. Default 0.
    pub seed: u64,
    /// Points per forward/backward pass (bounds memory). Default 10.
    pub batch_size: usize,
    /// Draws given instead of drawn (for comparing with another
    /// implementation on the same ones).
    pub draws: Option<Draws>,
}

impl Clone for GradientShap {
    fn clone(&self) -> Self {
        GradientShap {
            baselines: self.baselines.as_ref().map(Tensor::shallow_clone),
            draws: self.draws.clone(),
            ..*self
        }
    }
}

impl PartialEq for GradientShap {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: Option<&Tensor>, b: Option<&Tensor>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => a.size() == b.size() && a.equal(b),
            _ => false,
        };
        self.samples == other.samples
            && self.stdev == other.stdev
            && self.seed == other.seed
            && self.batch_size == other.batch_size
            && same(self.baselines.as_ref(), other.baselines.as_ref())
            && self.draws.is_none() == other.draws.is_none()
    }
}

impl GradientShap {
    /// Captum's defaults: 5 samples, no noise, seed 0, 10 points a pass.
    #[must_use]
    pub fn new() -> Self {
        GradientShap {
            samples: 5,
            stdev: 0.0,
            baselines: None,
            seed: 0,
            batch_size: 10,
            draws: None,
        }
    }

    /// Sets the samples per image.
    #[must_use]
    pub fn with_samples(mut self, samples: usize) -> Self {
        self.samples = samples;
        self
    }

    /// Sets the noise's standard deviation.
    #[must_use]
    pub fn with_stdev(mut self, stdev: f64) -> Self {
        self.stdev = stdev;
        self
    }

    /// Sets the baselines `[B, C, H, W]`.
    #[must_use]
    pub fn with_baselines(mut self, baselines: Tensor) -> Self {
        self.baselines = Some(baselines);
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the points per pass.
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Uses these draws (their `K` sets the samples).
    #[must_use]
    pub fn with_draws(mut self, draws: Draws) -> Self {
        self.samples = draws.indices.size().get(1).copied().unwrap_or(0) as usize;
        self.draws = Some(draws);
        self
    }

    /// The draws for image `index` (of shape `shape`, `[C, H, W]`) from
    /// `baselines` of them: `(indices [K], alphas [K], noise [K, C, H, W])`.
    fn draw(
        &self,
        index: usize,
        baselines: i64,
        shape: &[i64],
    ) -> (Vec<i64>, Vec<f32>, Option<Vec<f32>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(index as u64);
        let k = self.samples;
        let indices = (0..k).map(|_| rng.random_range(0..baselines)).collect();
        let alphas = (0..k).map(|_| rng.random::<f64>() as f32).collect();
        let noise = (self.stdev > 0.0).then(|| {
            let count = k * shape.iter().product::<i64>() as usize;
            (0..count)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    (z * self.stdev) as f32
                })
                .collect()
        });
        (indices, alphas, noise)
    }

    /// The draws this method makes for the batch `x` (`N` images) from `b`
    /// baselines each: what [`GradientShap::with_draws`] takes.
    #[must_use]
    pub fn draws_for(&self, x: &Tensor, b: i64) -> Draws {
        let (n, shape) = (x.size()[0], x.size()[1..].to_vec());
        let (mut indices, mut alphas, mut noise) = (vec![], vec![], vec![]);
        for i in 0..n as usize {
            let (idx, a, z) = self.draw(i, b, &shape);
            indices.extend(idx);
            alphas.extend(a);
            noise.extend(z.unwrap_or_default());
        }
        let k = self.samples as i64;
        let mut noise_shape = vec![n, k];
        noise_shape.extend(&shape);
        Draws {
            indices: Tensor::from_slice(&indices).view([n, k]),
            alphas: Tensor::from_slice(&alphas).view([n, k]),
            noise: (self.stdev > 0.0)
                .then(|| Tensor::from_slice(&noise).view(noise_shape.as_slice())),
        }
    }

    fn check_draws(&self, draws: &Draws, x: &Tensor, b: i64) -> Result<()> {
        let (n, k) = (x.size()[0], self.samples as i64);
        let bad = |what: &str, got: &Tensor| {
            Error::shape(
                "GradientShap draws",
                what.to_string(),
                format!("{:?}", got.size()),
            )
        };
        if draws.indices.size() != [n, k] || draws.indices.kind() != Kind::Int64 {
            return Err(bad(&format!("indices [{n}, {k}] (int64)"), &draws.indices));
        }
        if draws.alphas.size() != [n, k] {
            return Err(bad(&format!("alphas [{n}, {k}]"), &draws.alphas));
        }
        let (lo, hi) = (
            draws.indices.min().int64_value(&[]),
            draws.indices.max().int64_value(&[]),
        );
        if lo < 0 || hi >= b {
            return Err(Error::parameter(
                "GradientShap",
                "draws.indices",
                format!("{lo}..={hi}"),
                format!("must index the {b} baselines"),
            ));
        }
        if let Some(noise) = &draws.noise {
            let mut want = vec![n, k];
            want.extend(&x.size()[1..]);
            if noise.size() != want {
                return Err(bad(&format!("noise {want:?}"), noise));
            }
            check_finite("GradientShap draws.noise", noise)?;
        }
        check_finite("GradientShap draws.alphas", &draws.alphas)
    }
}

impl Method for GradientShap {
    fn name(&self) -> String {
        "gradient-shap".into()
    }

    fn passes_per_image(&self) -> usize {
        self.samples
    }

    fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::parameter(
                "GradientShap",
                "samples",
                0,
                "must be at least 1",
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::parameter(
                "GradientShap",
                "batch_size",
                0,
                "must be at least 1",
            ));
        }
        if !(self.stdev.is_finite() && self.stdev >= 0.0) {
            return Err(Error::parameter(
                "GradientShap",
                "stdev",
                self.stdev,
                "must be finite and at least 0",
            ));
        }
        Ok(())
    }

    fn op(&self) -> &'static str {
        "gradient_shap"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let op = self.op();
        let (x, targets) = (batch.x(), batch.targets());
        let (device, kind) = (x.device(), x.kind());
        let shared = match &self.baselines {
            Some(b) => {
                let (bs, xs) = (b.size(), x.size());
                if b.dim() != 4 || bs[0] == 0 || bs[1..] != xs[1..] {
                    return Err(Error::shape(
                        op,
                        format!(
                            "baselines [B >= 1, C, H, W] of the images' shape {:?}",
                            &xs[1..]
                        ),
                        format!("{bs:?}"),
                    ));
                }
                Some(b.to_device(device).to_kind(kind))
            }
            None => None,
        };
        let standard = match shared {
            Some(_) => None,
            None => Some(DeepLiftShap::standard_baselines(x)?),
        };
        let count = |i: i64| match (&shared, &standard) {
            (Some(b), _) => b.shallow_clone(),
            (None, Some(s)) => s.get(i),
            (None, None) => unreachable!("either shared or standard"),
        };
        let b = count(0).size()[0];
        if let Some(d) = &self.draws {
            self.check_draws(d, x, b)?;
        }
        let k = self.samples as i64;
        let mut out = Vec::with_capacity(targets.len());
        for (i, &target) in targets.iter().enumerate() {
            let ii = i as i64;
            let baselines = count(ii);
            let (indices, alphas, noise) = match &self.draws {
                Some(d) => (
                    d.indices.get(ii).to_device(device),
                    d.alphas.get(ii).to_device(device).to_kind(kind),
                    d.noise
                        .as_ref()
                        .map(|n| n.get(ii).to_device(device).to_kind(kind)),
                ),
                None => {
                    let (idx, a, z) = self.draw(i, b, &x.size()[1..]);
                    let mut shape = vec![k];
                    shape.extend(&x.size()[1..]);
                    (
                        Tensor::from_slice(&idx).to_device(device),
                        Tensor::from_slice(&a).to_device(device).to_kind(kind),
                        z.map(|z| {
                            Tensor::from_slice(&z)
                                .view(shape.as_slice())
                                .to_device(device)
                                .to_kind(kind)
                        }),
                    )
                }
            };
            let xi = x.narrow(0, ii, 1);
            let noisy = match &noise {
                Some(n) => &xi + n,
                None => xi.expand([k, -1, -1, -1], false).contiguous(),
            };
            let chosen = baselines.index_select(0, &indices);
            let a = alphas.view([k, 1, 1, 1]);
            // Captum's `a * input + (1 - a) * baseline`, in single precision.
            let points = &a * &noisy + (a.ones_like() - &a) * &chosen;
            let mut total = xi.zeros_like().to_kind(kind);
            for start in (0..k).step_by(self.batch_size) {
                let len = (self.batch_size as i64).min(k - start);
                let g = copies_gradient(net, &points.narrow(0, start, len), target)?;
                let d = noisy.narrow(0, start, len) - chosen.narrow(0, start, len);
                total += (d * g).sum_dim_intlist(0, true, kind);
            }
            out.push(total / k as f64);
        }
        Ok(Attributions::checked(Tensor::cat(&out, 0)))
    }
}
