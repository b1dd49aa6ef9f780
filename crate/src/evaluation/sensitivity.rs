//! Class sensitivity (Sixt, Granz and Landgraf, "When Explanations Lie: Why
//! Many Modified BP Attributions Fail", ICML 2020): does the map change with
//! the class it explains? A method's map for the class the model predicts
//! is compared with its map for another class of the same image. Maps that
//! stay the same whatever the class describe the image (or the network's
//! first layers), not the decision: Sixt et al. show that LRP's z+ and
//! alpha-beta rules, and other modified backward passes, converge to such a
//! map, whatever the target.
//!
//! The comparisons are those of model randomisation
//! ([`super::randomisation`]): Spearman's rank correlation of the absolute
//! maps (channel max of `|attribution|`) and of the signed maps (channel
//! sum), and SSIM of the absolute maps rescaled to `[0, 1]`. A correlation
//! with a map that is constant is undefined (NaN, as scipy gives it;
//! [`describe`](super::similarity::describe) says so in words).

use tch::{Kind, Tensor};

use super::similarity::{normalise, spearman, ssim};
use crate::attribution::{max_abs, Method};
use crate::error::{Error, Result};
use crate::model::{class_scores, Network};
use crate::support::{chunk_ranges, CPU_CHUNK};

/// The other class each image's map is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtherClass {
    /// The class the model finds least likely (a class the image has
    /// nothing of: a map that explains the decision should differ most).
    #[default]
    Lowest,
    /// The most likely class besides the target (the model's second
    /// choice: a hard case, as similar classes share evidence).
    RunnerUp,
    /// This class, for every image.
    Class(i64),
}

impl OtherClass {
    /// `lowest`, `runner-up`, or a class number.
    ///
    /// # Errors
    /// [`Error::Parameter`] for anything else.
    pub fn parse(s: &str) -> Result<OtherClass> {
        match s {
            "lowest" => Ok(OtherClass::Lowest),
            "runner-up" => Ok(OtherClass::RunnerUp),
            _ => s.parse().map(OtherClass::Class).map_err(|_| {
                Error::parameter(
                    "class sensitivity",
                    "other class",
                    s,
                    "expected lowest, runner-up or a class number",
                )
            }),
        }
    }
}

/// The class-sensitivity check's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassSensitivity {
    /// The other class. Default [`OtherClass::Lowest`].
    pub other: OtherClass,
}

/// What [`ClassSensitivity::run`] found, one value per image.
#[derive(Debug)]
pub struct ClassSensitivityResult {
    /// The classes the maps explain first.
    pub targets: Vec<i64>,
    /// The other classes.
    pub others: Vec<i64>,
    /// The absolute maps for the targets `[N, H, W]`.
    pub target_maps: Tensor,
    /// The absolute maps for the other classes `[N, H, W]`.
    pub other_maps: Tensor,
    /// Spearman's rank correlation of the absolute maps.
    pub spearman_abs: Vec<f64>,
    /// Spearman's rank correlation of the signed maps (channel sums).
    pub spearman_signed: Vec<f64>,
    /// SSIM of the absolute maps, each rescaled to `[0, 1]`.
    pub ssim: Vec<f64>,
}

impl ClassSensitivity {
    /// The other class of each image, from the network's scores `[N,
    /// classes]` and the targets.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a class outside the network's, or one that
    /// is an image's target.
    pub fn others(&self, scores: &Tensor, targets: &[i64]) -> Result<Vec<i64>> {
        let classes = scores.size()[1];
        let order = scores.argsort(1, true);
        targets
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let ranked = Vec::<i64>::try_from(order.get(i as i64))?;
                Ok(match self.other {
                    OtherClass::Lowest => *ranked.iter().rev().find(|&&c| c != t).unwrap_or(&t),
                    OtherClass::RunnerUp => *ranked.iter().find(|&&c| c != t).unwrap_or(&t),
                    OtherClass::Class(c) => {
                        if !(0..classes).contains(&c) || c == t {
                            return Err(Error::parameter(
                                "class sensitivity",
                                "other class",
                                c,
                                format!(
                                    "must be one of the network's {classes} classes and not image {i}'s target"
                                ),
                            ));
                        }
                        c
                    }
                })
            })
            .collect()
    }

    /// Runs `method` on `x` for `targets` and for each image's other class,
    /// and compares the maps image by image.
    ///
    /// # Errors
    /// As the method's, and those of [`ClassSensitivity::others`].
    pub fn run(
        &self,
        net: &dyn Network,
        method: &dyn Method,
        x: &Tensor,
        targets: &[i64],
    ) -> Result<ClassSensitivityResult> {
        self.run_with_progress(net, method, x, targets, &mut |_| {})
    }

    /// [`ClassSensitivity::run`] a few images at a time, calling
    /// `on_images(k)` after each `k` images.
    ///
    /// # Errors
    /// As [`ClassSensitivity::run`].
    pub fn run_with_progress(
        &self,
        net: &dyn Network,
        method: &dyn Method,
        x: &Tensor,
        targets: &[i64],
        on_images: &mut dyn FnMut(usize),
    ) -> Result<ClassSensitivityResult> {
        let others = self.others(&class_scores(net, x)?, targets)?;
        let (mut target_maps, mut other_maps) = (Vec::new(), Vec::new());
        let mut out = ClassSensitivityResult {
            targets: targets.to_vec(),
            others: others.clone(),
            target_maps: Tensor::new(),
            other_maps: Tensor::new(),
            spearman_abs: Vec::new(),
            spearman_signed: Vec::new(),
            ssim: Vec::new(),
        };
        for range in chunk_ranges(targets.len(), CPU_CHUNK as usize) {
            let xs = x.narrow(0, range.start as i64, range.len() as i64);
            let first = method.attribute(net, &xs, &targets[range.clone()])?.values;
            let second = method.attribute(net, &xs, &others[range.clone()])?.values;
            let (a_abs, b_abs) = (max_abs(&first)?, max_abs(&second)?);
            let signed = |t: &Tensor| t.sum_dim_intlist(1, false, Kind::Float);
            let (a_signed, b_signed) = (signed(&first), signed(&second));
            for i in 0..range.len() as i64 {
                out.spearman_abs
                    .push(spearman(&a_abs.get(i), &b_abs.get(i))?);
                out.spearman_signed
                    .push(spearman(&a_signed.get(i), &b_signed.get(i))?);
                out.ssim.push(ssim(
                    &normalise(&a_abs.get(i)),
                    &normalise(&b_abs.get(i)),
                    1.0,
                )?);
            }
            target_maps.push(a_abs);
            other_maps.push(b_abs);
            on_images(range.len());
        }
        out.target_maps = Tensor::cat(&target_maps, 0);
        out.other_maps = Tensor::cat(&other_maps, 0);
        Ok(out)
    }
}

/// The mean of the defined (finite) values; NaN where none is.
#[must_use]
pub fn defined_mean(values: &[f64]) -> f64 {
    let ok: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if ok.is_empty() {
        return f64::NAN;
    }
    ok.iter().sum::<f64>() / ok.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_class_is_the_lowest_the_runner_up_or_given() {
        let scores = Tensor::from_slice(&[0.1f32, 3.0, 2.0, -1.0, 5.0, 0.0, 1.0, 4.0]).view([2, 4]);
        let lowest = ClassSensitivity::default();
        assert_eq!(lowest.others(&scores, &[1, 0]).unwrap(), [3, 1]);
        // The target left out: image 0's lowest class is its target.
        assert_eq!(lowest.others(&scores, &[3, 2]).unwrap(), [0, 1]);
        let runner = ClassSensitivity {
            other: OtherClass::RunnerUp,
        };
        assert_eq!(runner.others(&scores, &[1, 0]).unwrap(), [2, 3]);
        assert_eq!(runner.others(&scores, &[2, 3]).unwrap(), [1, 0]);
        let given = ClassSensitivity {
            other: OtherClass::Class(2),
        };
        assert_eq!(given.others(&scores, &[1, 0]).unwrap(), [2, 2]);
        assert!(given.others(&scores, &[2, 0]).is_err());
        assert!(ClassSensitivity {
            other: OtherClass::Class(4)
        }
        .others(&scores, &[0, 0])
        .is_err());
        assert_eq!(
            OtherClass::parse("runner-up").unwrap(),
            OtherClass::RunnerUp
        );
        assert_eq!(OtherClass::parse("7").unwrap(), OtherClass::Class(7));
        assert!(OtherClass::parse("seven").is_err());
        assert!(defined_mean(&[f64::NAN]).is_nan());
        assert_eq!(defined_mean(&[1.0, f64::NAN, 3.0]), 2.0);
    }
}
