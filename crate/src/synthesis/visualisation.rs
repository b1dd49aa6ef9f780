//! Class visualisation: CS231n's `create_class_visualization`, batched and
//! seeded.

use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Tensor};

use super::{check_rgb, check_weight, clamp_to_valid, normalised, KIND};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::support::{catch_libtorch, check_classes, check_count, check_finite, index_tensor};
use crate::transforms::{blur_batch, IMAGE_SIZE};

/// A class visualisation's parameters: CS231n's defaults.
///
/// From random noise (`N(0, 1)` in the preprocessed space, as CS231n's
/// `torch.randn`), `steps` times: roll the image by a random offset (up to
/// `max_jitter` pixels right and down), take a step of `learning_rate`
/// along the normalised gradient of the target's score minus
/// `l2_reg * ||img||^2`, roll it back, clamp each channel to the range a
/// real image has ([`super::valid_range`]), and every `blur_every` steps
/// (steps 0, 10, 20, ... by default) blur it (`sigma` [`ClassVisualisation::blur_sigma`],
/// [`blur_batch`]). The noise and the offsets come from `seed` (image `i`'s
/// from the seed and `i` alone), or are given
/// ([`ClassVisualisation::run_from`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassVisualisation {
    /// Gradient steps (CS231n: 100).
    pub steps: usize,
    /// Each step's L2 length in the preprocessed space (CS231n: 25).
    pub learning_rate: f64,
    /// The weight of the L2 penalty `||img||^2` (CS231n: 1e-3).
    pub l2_reg: f64,
    /// Blur every this many steps (CS231n: 10); 0: never.
    pub blur_every: usize,
    /// The blur's standard deviation in pixels (CS231n: 0.5).
    pub blur_sigma: f64,
    /// The largest jitter in pixels (CS231n: 16); 0: no jitter.
    pub max_jitter: i64,
    /// The seed of the noise and the jitter.
    pub seed: u64,
    /// The images' side (224).
    pub size: i64,
}

impl Default for ClassVisualisation {
    fn default() -> Self {
        ClassVisualisation {
            steps: 100,
            learning_rate: 25.0,
            l2_reg: 1e-3,
            blur_every: 10,
            blur_sigma: 0.5,
            max_jitter: 16,
            seed: 0,
            size: IMAGE_SIZE as i64,
        }
    }
}

/// The jitter of every step of every image: `offsets[i][t] = [ox, oy]`, the
/// roll of image `i` before step `t`, `ox` pixels along the width (right)
/// and `oy` along the height (down), as CS231n's `jitter(X, ox, oy)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jitter {
    /// `[ox, oy]` per step, per image.
    pub offsets: Vec<Vec<[i64; 2]>>,
}

impl Jitter {
    /// No jitter: `steps` zero offsets for each of `n` images.
    #[must_use]
    pub fn none(n: usize, steps: usize) -> Self {
        Jitter {
            offsets: vec![vec![[0, 0]; steps]; n],
        }
    }

    /// The offsets as an array `[N, steps, 2]` (to save with `ndarray-npy`).
    #[must_use]
    pub fn to_array(&self) -> Array3<i64> {
        let n = self.offsets.len();
        let steps = self.offsets.first().map_or(0, Vec::len);
        Array3::from_shape_fn((n, steps, 2), |(i, t, k)| {
            self.offsets[i].get(t).map_or(0, |o| o[k])
        })
    }

    /// Offsets from an array `[N, steps, 2]` (`[ox, oy]` per step).
    ///
    /// # Errors
    /// [`Error::Shape`] if the last axis is not 2.
    pub fn from_array(a: &Array3<i64>) -> Result<Self> {
        let (n, steps, two) = a.dim();
        if two != 2 {
            return Err(Error::shape(
                "Jitter::from_array",
                "[N, steps, 2] offsets",
                format!("{:?}", a.shape()),
            ));
        }
        Ok(Jitter {
            offsets: (0..n)
                .map(|i| (0..steps).map(|t| [a[[i, t, 0]], a[[i, t, 1]]]).collect())
                .collect(),
        })
    }
}

/// What a class visualisation made.
#[derive(Debug)]
pub struct Visualisation {
    /// The images `[N, 3, H, W]`, preprocessed (detached, on the network's
    /// device): [`deprocess`](crate::deprocess) shows them.
    pub images: Tensor,
    /// The target's score at each step `[N, steps]` (float32, on the CPU):
    /// the score CS231n's loop computes, on the jittered image before the
    /// step.
    pub scores: Tensor,
    /// The target's score on each final image `[N]` (float32, on the CPU).
    pub final_scores: Tensor,
}

impl ClassVisualisation {
    /// The number of gradient steps (CS231n: 100).
    #[must_use]
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// The step length (CS231n: 25).
    #[must_use]
    pub fn with_learning_rate(mut self, learning_rate: f64) -> Self {
        self.learning_rate = learning_rate;
        self
    }

    /// The L2 penalty's weight (CS231n: 1e-3).
    #[must_use]
    pub fn with_l2_reg(mut self, l2_reg: f64) -> Self {
        self.l2_reg = l2_reg;
        self
    }

    /// Blur every `blur_every` steps (CS231n: 10); 0 never blurs.
    #[must_use]
    pub fn with_blur_every(mut self, blur_every: usize) -> Self {
        self.blur_every = blur_every;
        self
    }

    /// The blur's sigma in pixels (CS231n: 0.5).
    #[must_use]
    pub fn with_blur_sigma(mut self, blur_sigma: f64) -> Self {
        self.blur_sigma = blur_sigma;
        self
    }

    /// The largest jitter in pixels (CS231n: 16); 0 does not jitter.
    #[must_use]
    pub fn with_max_jitter(mut self, max_jitter: i64) -> Self {
        self.max_jitter = max_jitter;
        self
    }

    /// The seed of the noise and the jitter offsets.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The images' side in pixels (224).
    #[must_use]
    pub fn with_size(mut self, size: i64) -> Self {
        self.size = size;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a learning rate or blur sigma that is not
    /// finite and above 0, an L2 weight below 0, a jitter below 0 or not
    /// below the image's side, or a side of 0.
    pub fn check(&self) -> Result<()> {
        const OP: &str = "ClassVisualisation";
        check_weight(OP, "learning_rate", self.learning_rate, true)?;
        check_weight(OP, "l2_reg", self.l2_reg, false)?;
        check_weight(OP, "blur_sigma", self.blur_sigma, true)?;
        if self.size < 1 {
            return Err(Error::parameter(
                OP,
                "size",
                self.size,
                "must be at least 1",
            ));
        }
        if !(0..self.size).contains(&self.max_jitter) {
            return Err(Error::parameter(
                OP,
                "max_jitter",
                self.max_jitter,
                format!("must be in 0..{} (the image's side)", self.size),
            ));
        }
        Ok(())
    }

    /// The initial noise of `n` images `[n, 3, size, size]` on `device`:
    /// image `i`'s from the seed and `i` alone (a ChaCha8 stream, standard
    /// normals in NCHW order).
    pub fn noise(&self, n: usize, device: Device) -> Tensor {
        let per_image = (3 * self.size * self.size) as usize;
        let mut values = Vec::with_capacity(n * per_image);
        for i in 0..n {
            let mut rng = self.rng(i, 0);
            values.extend((0..per_image).map(|_| rng.sample::<f32, _>(StandardNormal)));
        }
        Tensor::from_slice(&values)
            .view([n as i64, 3, self.size, self.size])
            .to_device(device)
    }

    /// The jitter offsets of `n` images, each uniform in `0..=max_jitter`
    /// (CS231n's `random.randint(0, max_jitter)`), image `i`'s from the seed
    /// and `i` alone.
    #[must_use]
    pub fn jitter(&self, n: usize) -> Jitter {
        Jitter {
            offsets: (0..n)
                .map(|i| {
                    let mut rng = self.rng(i, 1);
                    (0..self.steps)
                        .map(|_| {
                            let ox = rng.random_range(0..=self.max_jitter);
                            let oy = rng.random_range(0..=self.max_jitter);
                            [ox, oy]
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// The generator of image `i`'s noise (`part` 0) or jitter (1).
    fn rng(&self, i: usize, part: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(2 * i as u64 + part);
        rng
    }

    /// Visualises each class of `targets` from the seed's noise and jitter,
    /// on the device of the network's weights given by `device`.
    ///
    /// # Errors
    /// As [`ClassVisualisation::run_from`].
    pub fn run<N: Network + ?Sized>(
        &self,
        net: &N,
        targets: &[i64],
        device: Device,
    ) -> Result<Visualisation> {
        self.check()?;
        let noise = self.noise(targets.len(), device);
        let jitter = self.jitter(targets.len());
        self.run_from(&net, &noise, &jitter, targets, &mut |_| {})
    }

    /// Visualises each class of `targets` from `noise` `[N, 3, H, W]` (a
    /// preprocessed batch, one image per target) with the given jitter
    /// (`steps` offsets per image, each below the image's side), calling
    /// `on_step(k)` when `k` of the `N * steps` image-steps are done.
    ///
    /// On the CPU each image runs alone, as CS231n's loop does (oneDNN's
    /// kernels for a batch of one round otherwise than a larger batch's, and
    /// 100 steps of ascent amplify it); on a GPU the batch runs at once.
    ///
    /// # Errors
    /// [`Error::Shape`] for noise that is not a batch of 3-channel float
    /// images, targets or offsets that are not one per image (and step);
    /// [`Error::Parameter`] for a bad parameter, NaN in the noise, a target
    /// outside the network's classes; a libtorch failure as an error.
    pub fn run_from(
        &self,
        net: &dyn Network,
        noise: &Tensor,
        jitter: &Jitter,
        targets: &[i64],
        on_step: &mut dyn FnMut(usize),
    ) -> Result<Visualisation> {
        const OP: &str = "ClassVisualisation";
        self.check()?;
        check_rgb(OP, noise)?;
        check_finite(OP, noise)?;
        let n = noise.size()[0];
        check_count(OP, n, targets)?;
        self.check_jitter(jitter, noise, n as usize)?;
        if let Some(classes) = net.num_classes() {
            check_classes(OP, targets, classes)?;
        }
        if noise.device() != Device::Cpu {
            return self.batch(net, noise, &jitter.offsets, targets, &mut |t| {
                on_step(t * n as usize)
            });
        }
        let mut parts = Vec::with_capacity(targets.len());
        for (i, &target) in targets.iter().enumerate() {
            let done = i * self.steps;
            parts.push(self.batch(
                net,
                &noise.narrow(0, i as i64, 1),
                &jitter.offsets[i..=i],
                &[target],
                &mut |t| on_step(done + t),
            )?);
        }
        let cat = |f: fn(&Visualisation) -> &Tensor| {
            Tensor::cat(
                &parts
                    .iter()
                    .map(|p| f(p).shallow_clone())
                    .collect::<Vec<_>>(),
                0,
            )
        };
        Ok(Visualisation {
            images: cat(|p| &p.images),
            scores: cat(|p| &p.scores),
            final_scores: cat(|p| &p.final_scores),
        })
    }

    /// The visualisations of a batch, all at once (inputs checked).
    fn batch(
        &self,
        net: &dyn Network,
        noise: &Tensor,
        jitter: &[Vec<[i64; 2]>],
        targets: &[i64],
        on_step: &mut dyn FnMut(usize),
    ) -> Result<Visualisation> {
        const OP: &str = "ClassVisualisation";
        let n = noise.size()[0];
        let device = noise.device();
        let index = index_tensor(targets, device);
        let mut img = noise.detach().to_kind(KIND).copy();
        let mut scores = Vec::with_capacity(self.steps);
        for t in 0..self.steps {
            let offsets: Vec<[i64; 2]> = jitter.iter().map(|o| o[t]).collect();
            let input = roll(&img, &offsets, 1).set_requires_grad(true);
            let logits = catch_libtorch(&input, || net.logits(&input))?;
            if t == 0 && net.num_classes().is_none() {
                crate::support::check_targets(&logits, targets, OP)?;
            }
            let score = logits.gather(1, &index, false).view([-1]);
            let penalty = input
                .reshape([n, -1])
                .norm_scalaropt_dim(2, [1], false)
                .pow_tensor_scalar(2)
                * self.l2_reg;
            let objective = (&score - penalty).sum(Kind::Float);
            let grad = Tensor::f_run_backward(&[objective], &[&input], false, false)?.remove(0);
            scores.push(score.detach().to_device(Device::Cpu));
            let moved = input.detach() + normalised(&grad) * self.learning_rate;
            img = clamp_to_valid(&roll(&moved, &offsets, -1));
            if self.blur_every > 0 && t % self.blur_every == 0 {
                img = blur_batch(&img, self.blur_sigma)?;
            }
            on_step(t + 1);
        }
        let final_scores = {
            let _guard = tch::no_grad_guard();
            let logits = catch_libtorch(&img, || net.logits(&img))?;
            logits
                .gather(1, &index, false)
                .view([-1])
                .to_device(Device::Cpu)
        };
        let scores = if scores.is_empty() {
            Tensor::zeros([n, 0], (Kind::Float, Device::Cpu))
        } else {
            Tensor::stack(&scores, 1)
        };
        Ok(Visualisation {
            images: img,
            scores,
            final_scores,
        })
    }

    /// Checks that `jitter` has `steps` offsets for each of `n` images, each
    /// in `0..side` (either sign).
    fn check_jitter(&self, jitter: &Jitter, noise: &Tensor, n: usize) -> Result<()> {
        const OP: &str = "ClassVisualisation";
        if jitter.offsets.len() != n {
            return Err(Error::shape(
                OP,
                format!("jitter offsets for {n} images"),
                jitter.offsets.len().to_string(),
            ));
        }
        let side = noise.size()[2].min(noise.size()[3]);
        for (i, o) in jitter.offsets.iter().enumerate() {
            if o.len() < self.steps {
                return Err(Error::shape(
                    OP,
                    format!("{} jitter offsets per image", self.steps),
                    format!("{} for image {i}", o.len()),
                ));
            }
            if let Some((t, bad)) = o
                .iter()
                .enumerate()
                .find(|(_, v)| v.iter().any(|d| d.abs() >= side))
            {
                return Err(Error::parameter(
                    OP,
                    "jitter",
                    format!("{bad:?} (image {i}, step {t})"),
                    format!("offsets must be below the image's side, {side}"),
                ));
            }
        }
        Ok(())
    }
}

/// Each image of `x` rolled by its `[ox, oy]` times `sign` (CS231n's
/// `jitter(X, ox, oy)`, and `jitter(X, -ox, -oy)` to undo it).
fn roll(x: &Tensor, offsets: &[[i64; 2]], sign: i64) -> Tensor {
    let first = offsets[0];
    if offsets.iter().all(|o| *o == first) {
        return roll_one(x, first, sign);
    }
    let images: Vec<Tensor> = offsets
        .iter()
        .enumerate()
        .map(|(i, &o)| roll_one(&x.narrow(0, i as i64, 1), o, sign))
        .collect();
    Tensor::cat(&images, 0)
}

fn roll_one(x: &Tensor, [ox, oy]: [i64; 2], sign: i64) -> Tensor {
    if ox == 0 && oy == 0 {
        x.shallow_clone()
    } else {
        x.roll([sign * oy, sign * ox], [2, 3])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_at_once_is_each_image_alone() {
        tch::manual_seed(3);
        let w = Tensor::randn([192, 10], (Kind::Float, Device::Cpu));
        let net = tch::nn::func(move |x| x.flatten(1, -1).matmul(&w).relu());
        let config = ClassVisualisation::default()
            .with_size(8)
            .with_max_jitter(5)
            .with_steps(12)
            .with_blur_every(4)
            .with_seed(9);
        let noise = config.noise(3, Device::Cpu);
        let jitter = config.jitter(3);
        assert!(jitter.offsets[0] != jitter.offsets[1]);
        let net: &dyn Network = &net;
        let targets = [2, 5, 2];
        let alone = config
            .run_from(net, &noise, &jitter, &targets, &mut |_| {})
            .unwrap();
        let together = config
            .batch(net, &noise, &jitter.offsets, &targets, &mut |_| {})
            .unwrap();
        for (a, b) in [
            (&alone.images, &together.images),
            (&alone.scores, &together.scores),
            (&alone.final_scores, &together.final_scores),
        ] {
            let rel = (a - b).norm().double_value(&[]) / a.norm().double_value(&[]);
            assert!(rel < 1e-5, "{rel}");
        }
        assert_eq!(Jitter::from_array(&jitter.to_array()).unwrap(), jitter);
    }
}
