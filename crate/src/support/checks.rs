//! The checks at the door of every method: a batch's shape and values, the
//! targets' count and classes; each error names what was wrong.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Checks that `x` is a non-empty, finite float batch `[N, C, H, W]`.
pub(crate) fn check_batch(op: &'static str, x: &Tensor) -> Result<()> {
    let s = x.size();
    if s.len() != 4 || s.contains(&0) {
        return Err(Error::shape(
            op,
            "a batch of images [N, C, H, W]",
            format!("{s:?}"),
        ));
    }
    if !x.is_floating_point() {
        return Err(Error::shape(
            op,
            "a float tensor (run preprocess first)",
            format!("{:?}", x.kind()),
        ));
    }
    check_finite(op, x)
}

/// The number of NaN and infinite values in a float tensor.
pub(crate) fn count_non_finite(x: &Tensor) -> i64 {
    x.isfinite().logical_not().sum(Kind::Int64).int64_value(&[])
}

/// Checks that a tensor is non-empty and, if it holds floats, finite.
pub(crate) fn check_finite(op: &'static str, x: &Tensor) -> Result<()> {
    if x.numel() == 0 {
        return Err(Error::shape(
            op,
            "a non-empty tensor",
            format!("{:?}", x.size()),
        ));
    }
    if x.is_floating_point() {
        // One pass (the minimum and maximum are finite only where every
        // value is); the count only where one is not.
        let (min, max) = x.detach().aminmax(None::<i64>, false);
        if !(min.double_value(&[]).is_finite() && max.double_value(&[]).is_finite()) {
            let bad = count_non_finite(x);
            return Err(Error::parameter(
                op,
                "input",
                format!("{bad} NaN/inf value(s)"),
                "inputs must be finite",
            ));
        }
    }
    Ok(())
}

/// Checks that `targets` has one entry per image of a batch of `n`.
pub(crate) fn check_count(op: &'static str, n: i64, targets: &[i64]) -> Result<()> {
    if targets.len() as i64 != n {
        return Err(Error::shape(
            op,
            format!("{n} target classes"),
            targets.len().to_string(),
        ));
    }
    Ok(())
}

/// Checks that `targets` holds one class of `scores` `[N, classes]` per row.
pub(crate) fn check_targets(scores: &Tensor, targets: &[i64], op: &'static str) -> Result<()> {
    let [n, classes] = scores.size()[..] else {
        return Err(Error::shape(
            op,
            "scores [N, classes]",
            format!("{:?}", scores.size()),
        ));
    };
    check_count(op, n, targets)?;
    check_classes(op, targets, classes)
}

/// Checks that every target lies in `0..classes`.
pub(crate) fn check_classes(op: &'static str, targets: &[i64], classes: i64) -> Result<()> {
    match targets
        .iter()
        .enumerate()
        .find(|(_, &t)| !(0..classes).contains(&t))
    {
        Some((i, t)) => Err(Error::parameter(
            op,
            "target",
            format!("{t} (image {i})"),
            format!("must be in 0..{classes}"),
        )),
        None => Ok(()),
    }
}
