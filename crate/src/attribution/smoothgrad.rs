//! SmoothGrad (Smilkov, Thorat, Kim, Viégas and Wattenberg, "SmoothGrad:
//! removing noise by adding noise", 2017): average the gradient over copies of
//! the input with i.i.d. Gaussian noise added, `sigma = noise_level * (max -
//! min)` of each image.
//!
//! One pass gives three estimators of the same samples:
//! - SmoothGrad: the mean gradient `E[g]`;
//! - SG-SQ: the mean squared gradient `E[g^2]` (Hooker et al., "A Benchmark
//!   for Interpretability Methods in Deep Neural Networks", NeurIPS 2019);
//! - VarGrad: the variance `E[g^2] - E[g]^2` (Adebayo et al., "Local
//!   Explanation Methods for Deep Neural Networks Lack Sensitivity to
//!   Parameter Values", ICLR workshop 2018), accumulated separately with a
//!   numerically stable pairwise (Chan et al.) update, so the identity
//!   `VarGrad = SG-SQ - SmoothGrad^2` is a check, not a definition.
//!
//! Noise depends on the seed, the image's index and the sample's number,
//! never on the batch size or on the other images. Two generators give it
//! ([`NoiseGenerator`]): on the CPU, a seeded ChaCha8 stream per image
//! (ziggurat normals, drawn by the CPU's cores); on a GPU, a counter-based
//! generator computed where the batch lives (a hash of the seed, image,
//! sample and pixel, then Box-Muller), so no noise crosses the bus. The
//! counter-based one also runs on the CPU and gives the same noise there, to
//! float rounding.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

use super::{NoiseTunnel, Vanilla};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::support::check_batch;

/// SmoothGrad's parameters, with the paper's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothGradConfig {
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

/// The source of SmoothGrad's Gaussian noise. Either way the noise of sample
/// `j` of image `i` depends only on the seed, `i` and `j`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseGenerator {
    /// [`NoiseGenerator::ChaCha8`] for an image on the CPU, else
    /// [`NoiseGenerator::Counter`].
    #[default]
    Auto,
    /// A ChaCha8 stream per image, normals by the ziggurat method, drawn on
    /// the CPU's cores (copied to the image's device if it is elsewhere).
    ChaCha8,
    /// A counter-based generator computed with tensor operations on the
    /// image's device: each pair of pixels hashes (seed, image, sample, pair)
    /// into two 24-bit uniforms (Wellons' `lowbias32` hash) and turns them
    /// into two normals (Box-Muller). Same integers on every device, so the
    /// same noise on a GPU and on the CPU, to float rounding.
    Counter,
}

impl Default for SmoothGradConfig {
    fn default() -> Self {
        SmoothGradConfig {
            noise_level: 0.15,
            samples: 50,
            seed: 0,
            batch_size: 10,
            generator: NoiseGenerator::Auto,
        }
    }
}

impl SmoothGradConfig {
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

/// The result of [`smoothgrad`]: three estimators over the same noisy
/// samples, each `[N, C, H, W]` float32.
#[derive(Debug)]
pub struct SmoothGrad {
    /// SmoothGrad: the mean gradient over the noisy samples.
    pub mean: Tensor,
    /// SG-SQ: the mean of the squared gradients.
    pub mean_square: Tensor,
    /// VarGrad: the (population) variance of the gradients.
    pub variance: Tensor,
    /// The absolute noise standard deviation used for each image.
    pub sigmas: Vec<f64>,
    /// Samples per image.
    pub samples: usize,
}

/// The noisy copies of one preprocessed image `[1, C, H, W]`, drawn in the
/// order [`smoothgrad`] draws them (so a figure can show exactly the inputs
/// that were averaged).
#[derive(Debug)]
pub struct NoiseSamples {
    image: Tensor,
    sigma: f64,
    source: Source,
    /// Samples drawn so far.
    drawn: u64,
}

#[derive(Debug)]
enum Source {
    ChaCha8 {
        /// The image's values in `[H, W, C]` order, on the CPU.
        hwc: Vec<f32>,
        /// The generator of this image (one ChaCha8 stream per image).
        rng: Box<ChaCha8Rng>,
    },
    Counter {
        /// The key of this image's samples: `mix(mix(seed) ^ index)`.
        key: u64,
        /// Pair numbers `0..C*H*W/2` (int64) on the image's device.
        pairs: Tensor,
    },
}

impl NoiseSamples {
    /// The noise stream for image `index` of a batch, under `config`'s seed
    /// and noise level; `image` is that image, `[1, C, H, W]` or `[C, H, W]`.
    ///
    /// # Errors
    /// [`Error::Parameter`] for an invalid config or a non-finite image,
    /// [`Error::Shape`] for a wrong shape (the counter-based generator also
    /// needs an even number of values per image).
    pub fn new(image: &Tensor, index: usize, config: &SmoothGradConfig) -> Result<Self> {
        config.validate()?;
        let image = match image.dim() {
            3 => image.unsqueeze(0),
            4 if image.size()[0] == 1 => image.shallow_clone(),
            _ => {
                return Err(Error::shape(
                    "NoiseSamples",
                    "one image [1, C, H, W]",
                    format!("{:?}", image.size()),
                ))
            }
        };
        check_batch("NoiseSamples", &image)?;
        let image = image.detach().to_kind(Kind::Float);
        let range = image.max().double_value(&[]) - image.min().double_value(&[]);
        let device = image.device();
        let counter = match config.generator {
            NoiseGenerator::Auto => device != Device::Cpu,
            NoiseGenerator::ChaCha8 => false,
            NoiseGenerator::Counter => true,
        };
        let source = if counter {
            let numel = image.numel() as i64;
            if numel % 2 != 0 {
                return Err(Error::shape(
                    "NoiseSamples (counter-based noise)",
                    "an even number of values per image",
                    format!("{:?}", image.size()),
                ));
            }
            Source::Counter {
                key: mix64(mix64(config.seed) ^ index as u64),
                pairs: Tensor::arange(numel / 2, (Kind::Int64, device)),
            }
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
            rng.set_stream(index as u64);
            let hwc = image
                .get(0)
                .permute([1, 2, 0])
                .to_device(Device::Cpu)
                .contiguous();
            Source::ChaCha8 {
                hwc: Vec::<f32>::try_from(hwc.flatten(0, -1))?,
                rng: Box::new(rng),
            }
        };
        Ok(NoiseSamples {
            image,
            sigma: config.noise_level * range,
            source,
            drawn: 0,
        })
    }

    /// The absolute noise standard deviation.
    #[must_use]
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The next `k` noisy copies, `[k, C, H, W]`, on the image's device.
    ///
    /// From ChaCha8 the noise is drawn pixel by pixel (`[k, H, W, C]` order)
    /// and the tensor keeps that memory layout ("channels last", NHWC
    /// strides): libtorch's CPU convolutions run faster on it, and no copy is
    /// needed. From the counter-based generator it comes in the default
    /// layout, made on the image's device.
    pub fn next_batch(&mut self, k: usize) -> Tensor {
        let first = self.drawn;
        self.drawn += k as u64;
        match &mut self.source {
            Source::ChaCha8 { hwc, rng } => {
                chacha_batch(&self.image, hwc, rng, self.sigma as f32, first, k)
            }
            Source::Counter { key, pairs } => {
                let z = counter_normals(*key, pairs, first, k);
                let s = self.image.size();
                z.view([k as i64, s[1], s[2], s[3]]) * self.sigma + &self.image
            }
        }
    }
}

/// `k` noisy copies from ChaCha8: sample `j` reads its own window of the
/// image's stream (2^40 words apart), so samples are drawn in parallel, and
/// the same whatever the batching.
fn chacha_batch(
    image: &Tensor,
    hwc: &[f32],
    rng: &ChaCha8Rng,
    sigma: f32,
    first: u64,
    k: usize,
) -> Tensor {
    let numel = hwc.len();
    let mut buf = vec![0f32; k * numel];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(k.max(1));
    let per = k.div_ceil(threads);
    std::thread::scope(|scope| {
        for (t, chunk) in buf.chunks_mut(per * numel).enumerate() {
            let mut rng = rng.clone();
            scope.spawn(move || {
                for (j, sample) in chunk.chunks_mut(numel).enumerate() {
                    rng.set_word_pos(u128::from(first + (t * per + j) as u64) << 40);
                    for (o, &v) in sample.iter_mut().zip(hwc) {
                        let z: f32 = StandardNormal.sample(&mut rng);
                        *o = v + sigma * z;
                    }
                }
            });
        }
    });
    let s = image.size();
    Tensor::from_slice(&buf)
        .view([k as i64, s[2], s[3], s[1]])
        .permute([0, 3, 1, 2])
        .to_device(image.device())
}

/// SplitMix64's finaliser (Steele, Lea and Flood 2014): a bijective 64-bit
/// mixer, used to derive one key per (seed, image, sample).
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Wellons' `lowbias32` hash, a bijection of `u32` (the scalar twin of
/// [`hash32`]).
#[cfg(test)]
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// `x * m mod 2^32` for int64 tensors holding values below 2^32, exactly:
/// the multiplier is split in 16-bit halves so no product passes 2^49.
fn mul32(x: &Tensor, m: u32) -> Tensor {
    let (lo, hi) = (i64::from(m & 0xffff), i64::from(m >> 16));
    let high = (x * hi)
        .bitwise_and(0xffff)
        .bitwise_left_shift_tensor_scalar(16);
    (x * lo + high).bitwise_and(0xffff_ffff_i64)
}

/// `x ^ (x >> shift)`.
fn xorshift(x: &Tensor, shift: i64) -> Tensor {
    x.bitwise_xor_tensor(&x.bitwise_right_shift_tensor_scalar(shift))
}

/// [`lowbias32`] on every element of an int64 tensor of values below 2^32.
fn hash32(x: &Tensor) -> Tensor {
    let x = mul32(&xorshift(x, 16), 0x7feb_352d);
    let x = mul32(&xorshift(&x, 15), 0x846c_a68b);
    xorshift(&x, 16)
}

/// Standard normals for samples `first..first + k` of the image keyed
/// `key`, `[k, 2 * pairs]`: pair `p` of sample `j` hashes to `y =
/// hash32(p ^ a_j)` and `hash32(y ^ b_j)`, where `(a_j, b_j)` are the halves
/// of `mix64(key ^ j)`; their top 24 bits are the uniforms `u1` in (0, 1]
/// and `u2` in [0, 1) of Box-Muller, giving `r cos t` and `r sin t` for the
/// pair's two values.
fn counter_normals(key: u64, pairs: &Tensor, first: u64, k: usize) -> Tensor {
    let device = pairs.device();
    let (a, b): (Vec<i64>, Vec<i64>) = (first..first + k as u64)
        .map(|j| {
            let w = mix64(key ^ j);
            ((w & 0xffff_ffff) as i64, (w >> 32) as i64)
        })
        .unzip();
    let a = Tensor::from_slice(&a).to_device(device).view([-1, 1]);
    let b = Tensor::from_slice(&b).to_device(device).view([-1, 1]);
    let y = hash32(&pairs.unsqueeze(0).bitwise_xor_tensor(&a));
    let h = hash32(&y.bitwise_xor_tensor(&b));
    let scale = 1.0 / f64::from(1u32 << 24);
    let u1 = (y.bitwise_right_shift_tensor_scalar(8) + 1).to_kind(Kind::Float) * scale;
    let u2 = h.bitwise_right_shift_tensor_scalar(8).to_kind(Kind::Float) * scale;
    let r = (u1.log() * -2.0).sqrt();
    let t = u2 * std::f64::consts::TAU;
    Tensor::stack(&[&r * t.cos(), r * t.sin()], 2).view([k as i64, -1])
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
/// [`NoiseTunnel`] over [`Vanilla`]. The copies go through the network in the
/// layout it asks for and, where it can, scoring the target class alone
/// ([`Network::copy_layout`], [`Network::class_score`]): a [`Model`] from
/// [`squeezenet1_1`] does both on the CPU, a `&dyn ModuleT` neither (the same
/// numbers, slower).
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
) -> Result<SmoothGrad> {
    NoiseTunnel::new(Vanilla, config.clone()).estimate(&net, x, targets)
}

impl SmoothGrad {
    /// Moves the three estimators to `device`.
    #[must_use]
    pub fn to_device(self, device: Device) -> Self {
        SmoothGrad {
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
    fn noise_has_the_requested_scale_and_is_batch_invariant() {
        // Range of the image is 2 (from -1 to 1), noise level 0.25 -> sigma 0.5.
        let img = Tensor::from_slice(&[-1.0f32, 1.0])
            .view([1, 1, 1, 2])
            .repeat([1, 1, 100, 50]);
        for generator in [NoiseGenerator::ChaCha8, NoiseGenerator::Counter] {
            let cfg = SmoothGradConfig::default()
                .with_noise_level(0.25)
                .with_seed(7)
                .with_generator(generator);
            let mut a = NoiseSamples::new(&img, 3, &cfg).unwrap();
            assert!((a.sigma() - 0.5).abs() < 1e-12);
            let whole = a.next_batch(4);
            let std = (&whole - &img).std(true).double_value(&[]);
            assert!((std - 0.5).abs() < 0.01, "{generator:?}: {std}");
            let mut b = NoiseSamples::new(&img, 3, &cfg).unwrap();
            let parts = Tensor::cat(&[b.next_batch(1), b.next_batch(3)], 0);
            assert!(whole.equal(&parts), "{generator:?}");
            let mut other = NoiseSamples::new(&img, 4, &cfg).unwrap();
            assert!(!whole.equal(&other.next_batch(4)), "{generator:?}");
            let mut reseeded = NoiseSamples::new(&img, 3, &cfg.clone().with_seed(8)).unwrap();
            assert!(!whole.equal(&reseeded.next_batch(4)), "{generator:?}");
        }
    }

    #[test]
    fn tensor_hash_equals_the_scalar_hash() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let xs: Vec<u32> = (0..10_000)
            .map(|_| rand::Rng::random(&mut rng))
            .chain([0, 1, u32::MAX, 0x8000_0000])
            .collect();
        let t = Tensor::from_slice(&xs.iter().map(|&x| i64::from(x)).collect::<Vec<_>>());
        let got = Vec::<i64>::try_from(hash32(&t)).unwrap();
        for (x, g) in xs.iter().zip(got) {
            assert_eq!(g, i64::from(lowbias32(*x)), "hash of {x}");
        }
    }

    #[test]
    fn counter_normals_look_standard_and_independent() {
        let pairs = Tensor::arange(75_264, (Kind::Int64, Device::Cpu)); // one 3 x 224 x 224 image
                                                                        // Seed 0, image 0.
        let z = counter_normals(mix64(mix64(0)), &pairs, 0, 8).to_kind(Kind::Double);
        let (mean, std) = (
            z.mean(Kind::Double).double_value(&[]),
            z.std(true).double_value(&[]),
        );
        assert!(
            mean.abs() < 0.002 && (std - 1.0).abs() < 0.002,
            "mean {mean}, std {std}"
        );
        // Tails: P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027.
        let tail = |c: f64| {
            z.abs()
                .gt(c)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[])
        };
        assert!((tail(2.0) - 0.0455).abs() < 0.001, "{}", tail(2.0));
        assert!((tail(3.0) - 0.0027).abs() < 0.0003, "{}", tail(3.0));
        let corr = |a: &Tensor, b: &Tensor| (a * b).mean(Kind::Double).double_value(&[]);
        let n = z.size()[1];
        // Neighbours (the two values of a pair, and adjacent pairs), and samples.
        let (even, odd) = (z.slice(1, 0, n, 2), z.slice(1, 1, n, 2));
        assert!(corr(&even, &odd).abs() < 0.005);
        assert!(corr(&z.narrow(1, 0, n - 2), &z.narrow(1, 2, n - 2)).abs() < 0.005);
        assert!(corr(&z.get(0), &z.get(1)).abs() < 0.01);
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
