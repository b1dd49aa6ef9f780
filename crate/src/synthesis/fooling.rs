//! Fooling images: CS231n's `make_fooling_image`, batched.

use tch::{Device, Kind, Tensor};

use super::{check_rgb, check_weight, clamp_to_valid, normalised, rows, KIND};
use crate::error::Result;
use crate::model::Network;
use crate::support::{catch_libtorch, check_count, check_targets, index_tensor};

/// A fooling image's parameters: CS231n's defaults (learning rate 1, at most
/// 100 steps), and a clamp to the range of a real image after each step.
///
/// Each step is `x += learning_rate * g / ||g||`, with `g` the gradient of
/// the target class's score (the logit) with respect to the image, until
/// the network predicts the target (checked before each step, and once
/// more after the last) or `max_steps` steps are taken.
///
/// The clamp is the one change to CS231n's `make_fooling_image`, which lets
/// pixels leave the range a photograph has (and which its class
/// visualisation clamps to): with it the result is still an image, one that
/// [`deprocess`](crate::deprocess) shows as it is. `with_clamp(false)` is
/// CS231n's rule as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoolingImage {
    /// The step's length in the preprocessed space (L2 norm of one step).
    pub learning_rate: f64,
    /// The most steps taken.
    pub max_steps: usize,
    /// Whether each step is clamped to [`super::valid_range`].
    pub clamp: bool,
}

impl Default for FoolingImage {
    fn default() -> Self {
        FoolingImage {
            learning_rate: 1.0,
            max_steps: 100,
            clamp: true,
        }
    }
}

/// What [`FoolingImage::run`] made.
#[derive(Debug)]
pub struct Fooled {
    /// The fooling images `[N, 3, H, W]`, preprocessed (detached, on the
    /// input's device).
    pub images: Tensor,
    /// The steps each image took.
    pub steps: Vec<usize>,
    /// Whether the network predicts each image's target on its fooling
    /// image.
    pub fooled: Vec<bool>,
    /// The class the network predicted on each input image.
    pub before: Vec<i64>,
    /// The class it predicts on each fooling image.
    pub after: Vec<i64>,
}

impl FoolingImage {
    /// The step length (CS231n: 1).
    #[must_use]
    pub fn with_learning_rate(mut self, learning_rate: f64) -> Self {
        self.learning_rate = learning_rate;
        self
    }

    /// The most steps (CS231n: 100).
    #[must_use]
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }

    /// Whether each step is clamped to the range of a real image (default:
    /// yes; `false` is CS231n's rule as written).
    #[must_use]
    pub fn with_clamp(mut self, clamp: bool) -> Self {
        self.clamp = clamp;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a learning rate that is not finite and
    /// above 0.
    pub fn check(&self) -> Result<()> {
        check_weight("FoolingImage", "learning_rate", self.learning_rate, true)
    }

    /// A fooling image of each image of `x` (preprocessed, `[N, 3, H, W]`)
    /// for its target class.
    ///
    /// # Errors
    /// [`Error::Shape`] for a batch that is not of 3-channel float images or
    /// targets that are not one per image, [`Error::Parameter`] for NaN in
    /// `x`, a target outside the network's classes or a bad parameter, and a
    /// libtorch failure (an input the network does not take) as an error.
    pub fn run<N: Network + ?Sized>(&self, net: &N, x: &Tensor, targets: &[i64]) -> Result<Fooled> {
        self.run_with_progress(&net, x, targets, &mut |_| {})
    }

    /// [`FoolingImage::run`], calling `on_image(k)` when `k` images are
    /// done.
    ///
    /// On the CPU each image runs alone, as CS231n's `make_fooling_image`
    /// does: oneDNN computes a batch of one with other kernels than a larger
    /// batch, and their last bits differ; gradient ascent amplifies that
    /// (the lab's images, batched, ended 1e-3 from PyTorch's result, alone
    /// bit for bit). On a GPU the batch runs at once.
    ///
    /// # Errors
    /// As [`FoolingImage::run`].
    pub fn run_with_progress(
        &self,
        net: &dyn Network,
        x: &Tensor,
        targets: &[i64],
        on_image: &mut dyn FnMut(usize),
    ) -> Result<Fooled> {
        const OP: &str = "FoolingImage";
        self.check()?;
        check_rgb(OP, x)?;
        check_count(OP, x.size()[0], targets)?;
        if let Some(classes) = net.num_classes() {
            crate::support::check_classes(OP, targets, classes)?;
        }
        if x.device() != Device::Cpu {
            let fooled = self.batch(net, x, targets)?;
            on_image(targets.len());
            return Ok(fooled);
        }
        let mut parts = Vec::with_capacity(targets.len());
        for (i, &target) in targets.iter().enumerate() {
            parts.push(self.batch(net, &x.narrow(0, i as i64, 1), &[target])?);
            on_image(i + 1);
        }
        let images: Vec<Tensor> = parts.iter().map(|p| p.images.shallow_clone()).collect();
        Ok(Fooled {
            images: Tensor::cat(&images, 0),
            steps: parts.iter().flat_map(|p| p.steps.clone()).collect(),
            fooled: parts.iter().flat_map(|p| p.fooled.clone()).collect(),
            before: parts.iter().flat_map(|p| p.before.clone()).collect(),
            after: parts.iter().flat_map(|p| p.after.clone()).collect(),
        })
    }

    /// The fooling images of a batch, all at once (inputs checked).
    fn batch(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Fooled> {
        const OP: &str = "FoolingImage";
        let mut images = x.detach().to_kind(KIND).copy();
        let n = targets.len();
        let mut steps = vec![0; n];
        let mut fooled = vec![false; n];
        let mut before = vec![0; n];
        let mut after = vec![0; n];
        // The images still going, by their index in the batch.
        let mut active: Vec<i64> = (0..n as i64).collect();
        for step in 0..=self.max_steps {
            let input = rows(&images, &active).set_requires_grad(true);
            let logits = catch_libtorch(&input, || net.logits(&input))?;
            if step == 0 {
                check_targets(&logits, targets, OP)?;
            }
            let predicted =
                Vec::<i64>::try_from(&logits.detach().argmax(1, false).to_device(Device::Cpu))?;
            let mut going = Vec::with_capacity(active.len());
            for (k, (&i, &p)) in active.iter().zip(&predicted).enumerate() {
                let i = i as usize;
                if step == 0 {
                    before[i] = p;
                }
                after[i] = p;
                if p == targets[i] {
                    fooled[i] = true;
                } else if step < self.max_steps {
                    going.push((k as i64, i as i64));
                }
            }
            if going.is_empty() {
                break;
            }
            // Only the rows still going are scored: the others' gradients are
            // zero and unused (each row's score depends on its image alone).
            let (local, global): (Vec<i64>, Vec<i64>) = going.into_iter().unzip();
            let classes: Vec<i64> = global.iter().map(|&i| targets[i as usize]).collect();
            let score = rows(&logits, &local)
                .gather(1, &index_tensor(&classes, logits.device()), false)
                .sum(Kind::Float);
            let grad = Tensor::f_run_backward(&[score], &[&input], false, false)?.remove(0);
            let grad = rows(&grad, &local);
            let mut moved = rows(&images, &global) + normalised(&grad) * self.learning_rate;
            if self.clamp {
                moved = clamp_to_valid(&moved);
            }
            let index = Tensor::from_slice(&global).to_device(images.device());
            images = images.index_copy(0, &index, &moved.detach());
            for &i in &global {
                steps[i as usize] += 1;
            }
            active = global;
        }
        Ok(Fooled {
            images,
            steps,
            fooled,
            before,
            after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linear classifier of 10 classes on 3 x 8 x 8 images.
    fn linear() -> impl Fn(&Tensor) -> Tensor {
        tch::manual_seed(3);
        let w = Tensor::randn([192, 10], (Kind::Float, Device::Cpu));
        move |x: &Tensor| x.flatten(1, -1).matmul(&w)
    }

    #[test]
    fn the_batch_at_once_takes_each_image_s_own_steps() {
        let f = linear();
        let net = tch::nn::func(move |x| f(x));
        tch::manual_seed(4);
        let x = Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu)) * 0.5;
        let targets = [1, 7, 3, 9];
        let config = FoolingImage::default().with_learning_rate(0.5);
        let net: &dyn Network = &net;
        let alone = config.run(net, &x, &targets).unwrap();
        let together = config.batch(net, &x, &targets).unwrap();
        assert_eq!(alone.steps, together.steps);
        assert_eq!(
            (alone.fooled, alone.before, alone.after),
            (together.fooled, together.before, together.after)
        );
        let rel = (&alone.images - &together.images).norm().double_value(&[])
            / alone.images.norm().double_value(&[]);
        assert!(rel < 1e-5, "{rel}");
        let distinct: std::collections::HashSet<_> = alone.steps.iter().collect();
        assert!(
            distinct.len() > 1,
            "images that stop at different steps: {:?}",
            alone.steps
        );
    }
}
