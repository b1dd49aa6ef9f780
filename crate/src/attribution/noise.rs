//! The noise of the noise tunnel ([`super::noise_tunnel`]): Gaussian noise
//! added to copies of an image, `sigma = noise_level * (max - min)` of each
//! image.
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

use crate::error::{Error, Result};
use crate::support::check_batch;

/// The source of the noise tunnel's Gaussian noise. Either way the noise of sample
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

/// The noisy copies of one preprocessed image `[1, C, H, W]`, drawn in the
/// order the noise tunnel draws them ([`smoothgrad`](super::smoothgrad) among its uses) (so a figure can show exactly the inputs
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
    /// `image` (`[1, C, H, W]` or `[C, H, W]`) as one checked image `[1, C,
    /// H, W]`: finite floats.
    pub(crate) fn one_image(image: &Tensor) -> Result<Tensor> {
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
        Ok(image)
    }

    /// The noise stream for image `index` of a batch at `noise_level` (a
    /// fraction of the image's range) from `seed` and `generator`; `image`
    /// is that image, `[1, C, H, W]`. The image and the parameters are
    /// already checked (by the tunnel, once for the whole batch, or by
    /// [`NoiseSamples::new`]).
    pub(crate) fn from_parts(
        image: &Tensor,
        index: usize,
        noise_level: f64,
        seed: u64,
        generator: NoiseGenerator,
    ) -> Result<Self> {
        let image = image.detach().to_kind(Kind::Float);
        let (min, max) = image.aminmax(None::<i64>, false);
        let range = max.double_value(&[]) - min.double_value(&[]);
        let device = image.device();
        let counter = match generator {
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
                key: mix64(mix64(seed) ^ index as u64),
                pairs: Tensor::arange(numel / 2, (Kind::Int64, device)),
            }
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
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
            sigma: noise_level * range,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_has_the_requested_scale_and_is_batch_invariant() {
        // Range of the image is 2 (from -1 to 1), noise level 0.25 -> sigma 0.5.
        let img = Tensor::from_slice(&[-1.0f32, 1.0])
            .view([1, 1, 1, 2])
            .repeat([1, 1, 100, 50]);
        for generator in [NoiseGenerator::ChaCha8, NoiseGenerator::Counter] {
            let samples =
                |index, seed| NoiseSamples::from_parts(&img, index, 0.25, seed, generator);
            let mut a = samples(3, 7).unwrap();
            assert!((a.sigma() - 0.5).abs() < 1e-12);
            let whole = a.next_batch(4);
            let std = (&whole - &img).std(true).double_value(&[]);
            assert!((std - 0.5).abs() < 0.01, "{generator:?}: {std}");
            let mut b = samples(3, 7).unwrap();
            let parts = Tensor::cat(&[b.next_batch(1), b.next_batch(3)], 0);
            assert!(whole.equal(&parts), "{generator:?}");
            let mut other = samples(4, 7).unwrap();
            assert!(!whole.equal(&other.next_batch(4)), "{generator:?}");
            let mut reseeded = samples(3, 8).unwrap();
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
}
