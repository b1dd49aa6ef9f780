//! Model randomisation (Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim,
//! "Sanity Checks for Saliency Maps", NeurIPS 2018): re-initialise the
//! network's layers from the top (the classifier) down and recompute a
//! method's maps after each step. A map that explains the model should
//! change as the model's learned weights go; a map that stays the same
//! describes the image, not the model (as an edge detector does).
//!
//! Two variants: cascading (each step randomises one more layer, the ones
//! above it staying random) and independent (one layer at a time, the others
//! trained). The similarity of each map to the original, image by image:
//! Spearman's rank correlation of the absolute maps (channel max of
//! `|attribution|`) and of the signed maps (channel sum), and SSIM of the
//! absolute maps rescaled to `[0, 1]`.

use tch::{Kind, Tensor};

use super::sensitivity::defined_mean;
use super::similarity::{normalise, spearman, ssim};
use crate::attribution::{max_abs, Method};
use crate::error::Result;
use crate::model::{Model, SavedWeights};

/// Cascading or independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Order {
    /// Layer after layer from the top, cumulatively (Adebayo et al.'s
    /// cascading randomisation).
    #[default]
    Cascading,
    /// One layer at a time, the rest of the network trained.
    Independent,
}

/// The randomisation test's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Randomisation {
    /// Cascading (default) or independent.
    pub order: Order,
    /// The seed of the new weights. Default 0.
    pub seed: u64,
}

/// What [`Randomisation::run`] found: one row per step, one column per image.
#[derive(Debug)]
pub struct RandomisationResult {
    /// The layers, in the order they were randomised (from the top).
    pub layers: Vec<String>,
    /// The trained model's absolute maps `[N, H, W]`.
    pub original: Tensor,
    /// The absolute maps after each step, `[N, H, W]` each.
    pub maps: Vec<Tensor>,
    /// Spearman's rank correlation of the absolute maps with the original.
    pub spearman_abs: Vec<Vec<f64>>,
    /// Spearman's rank correlation of the signed maps (channel sums).
    pub spearman_signed: Vec<Vec<f64>>,
    /// SSIM of the absolute maps, each rescaled to `[0, 1]`.
    pub ssim: Vec<Vec<f64>>,
}

impl RandomisationResult {
    /// The mean over the images of each step's values (NaN, from a map that
    /// became constant, left out; NaN where no value is defined).
    #[must_use]
    pub fn means(values: &[Vec<f64>]) -> Vec<f64> {
        values.iter().map(|row| defined_mean(row)).collect()
    }
}

/// The 2-D maps compared: the channel max of the absolute attribution, and
/// the channel sum.
fn summaries(a: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((max_abs(a)?, a.sum_dim_intlist(1, false, Kind::Float)))
}

/// Restores the model's weights when dropped, so that an error (or a panic)
/// halfway leaves the model trained.
struct Restore<'a> {
    model: &'a Model,
    saved: Vec<SavedWeights>,
}

impl Restore<'_> {
    fn all(&mut self) -> Result<()> {
        while let Some(s) = self.saved.pop() {
            self.model.restore(s)?;
        }
        Ok(())
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = self.all();
    }
}

impl Randomisation {
    /// Runs `method` on `x` (with `targets`) under the trained model and after
    /// each randomisation step, and compares the maps. The model's weights
    /// are restored at the end.
    ///
    /// # Errors
    /// As the method's, and [`crate::Error::Parameter`] if the model has no
    /// layers with weights.
    pub fn run(
        &self,
        model: &Model,
        method: &dyn Method,
        x: &Tensor,
        targets: &[i64],
    ) -> Result<RandomisationResult> {
        self.run_with_progress(model, method, x, targets, &mut |_| {})
    }

    /// [`Randomisation::run`], calling `on_step(k)` after step `k`.
    ///
    /// # Errors
    /// As [`Randomisation::run`].
    pub fn run_with_progress(
        &self,
        model: &Model,
        method: &dyn Method,
        x: &Tensor,
        targets: &[i64],
        on_step: &mut dyn FnMut(usize),
    ) -> Result<RandomisationResult> {
        let mut layers = model.weight_layers();
        layers.reverse();
        let (orig_abs, orig_signed) = summaries(&method.attribute(model, x, targets)?.values)?;
        let mut guard = Restore {
            model,
            saved: Vec::new(),
        };
        let mut out = RandomisationResult {
            layers: layers.clone(),
            original: orig_abs.shallow_clone(),
            maps: Vec::new(),
            spearman_abs: Vec::new(),
            spearman_signed: Vec::new(),
            ssim: Vec::new(),
        };
        for (k, layer) in layers.iter().enumerate() {
            if self.order == Order::Independent {
                guard.all()?;
            }
            guard.saved.push(model.reinitialise(
                std::slice::from_ref(layer),
                self.seed.wrapping_add(k as u64),
            )?);
            let (abs, signed) = summaries(&method.attribute(model, x, targets)?.values)?;
            let n = targets.len() as i64;
            let mut row = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..n {
                row.0.push(spearman(&orig_abs.get(i), &abs.get(i))?);
                row.1.push(spearman(&orig_signed.get(i), &signed.get(i))?);
                row.2.push(ssim(
                    &normalise(&orig_abs.get(i)),
                    &normalise(&abs.get(i)),
                    1.0,
                )?);
            }
            out.spearman_abs.push(row.0);
            out.spearman_signed.push(row.1);
            out.ssim.push(row.2);
            out.maps.push(abs);
            on_step(k);
        }
        guard.all()?;
        Ok(out)
    }
}
