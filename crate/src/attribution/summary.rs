//! 2-D summaries of a multi-channel attribution `[N, C, H, W]` -> `[N, H, W]`.
//!
//! The lab shows two: the channel maximum of the raw gradient (signed, drawn
//! with a diverging palette) and the channel maximum of its absolute value
//! (what Simonyan et al. and the original CS231n code use, drawn with `hot`).
//! Mean-abs and the L2 norm over channels are the other common choices.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Which 2-D summary to take over the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Summary {
    /// `max_c g` (signed): the lab's `compute_max`.
    Max,
    /// `max_c |g|`: the lab's `compute_max(compute_abs(g))`.
    MaxAbs,
    /// `mean_c |g|`.
    MeanAbs,
    /// `sqrt(sum_c g^2)`.
    L2,
}

impl Summary {
    /// Applies the summary to `[N, C, H, W]`, giving `[N, H, W]`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `g` is not 4-D.
    pub fn apply(self, g: &Tensor) -> Result<Tensor> {
        match self {
            Summary::Max => max(g),
            Summary::MaxAbs => max_abs(g),
            Summary::MeanAbs => mean_abs(g),
            Summary::L2 => l2(g),
        }
    }

    /// A short name for titles and file names (`max`, `maxabs`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Summary::Max => "max",
            Summary::MaxAbs => "maxabs",
            Summary::MeanAbs => "meanabs",
            Summary::L2 => "l2",
        }
    }
}

fn check4(op: &'static str, g: &Tensor) -> Result<()> {
    if g.dim() != 4 {
        return Err(Error::shape(
            op,
            "an attribution [N, C, H, W]",
            format!("{:?}", g.size()),
        ));
    }
    Ok(())
}

/// The lab's `compute_abs`: `|g|`, same shape.
///
/// # Errors
/// [`Error::Shape`] if `g` is not 4-D.
pub fn abs(g: &Tensor) -> Result<Tensor> {
    check4("abs", g)?;
    Ok(g.abs())
}

/// The lab's `compute_max`: the maximum over channels, `[N, H, W]` (signed).
///
/// # Errors
/// [`Error::Shape`] if `g` is not 4-D.
pub fn max(g: &Tensor) -> Result<Tensor> {
    check4("max", g)?;
    Ok(g.amax(1, false))
}

/// The maximum of `|g|` over channels, `[N, H, W]`: the saliency map of
/// Simonyan et al. (the lab's `saliency_maxabs`).
///
/// # Errors
/// [`Error::Shape`] if `g` is not 4-D.
pub fn max_abs(g: &Tensor) -> Result<Tensor> {
    check4("max_abs", g)?;
    Ok(g.abs().amax(1, false))
}

/// The mean of `|g|` over channels, `[N, H, W]`.
///
/// # Errors
/// [`Error::Shape`] if `g` is not 4-D.
pub fn mean_abs(g: &Tensor) -> Result<Tensor> {
    check4("mean_abs", g)?;
    Ok(g.abs().mean_dim(1, false, Kind::Float))
}

/// The L2 norm over channels, `sqrt(sum_c g^2)`, `[N, H, W]`.
///
/// # Errors
/// [`Error::Shape`] if `g` is not 4-D.
pub fn l2(g: &Tensor) -> Result<Tensor> {
    check4("l2", g)?;
    Ok(g.square().sum_dim_intlist(1, false, Kind::Float).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_by_hand() {
        // One pixel, three channels: g = (-3, 1, 2).
        let g = Tensor::from_slice(&[-3.0f32, 1.0, 2.0]).view([1, 3, 1, 1]);
        let v = |t: Tensor| t.double_value(&[0, 0, 0]);
        assert_eq!(v(max(&g).unwrap()), 2.0);
        assert_eq!(v(max_abs(&g).unwrap()), 3.0);
        assert_eq!(v(mean_abs(&g).unwrap()), 2.0); // (3 + 1 + 2) / 3
        assert!((v(l2(&g).unwrap()) - 14f64.sqrt()).abs() < 1e-6); // sqrt(9 + 1 + 4)
        assert_eq!(abs(&g).unwrap().double_value(&[0, 0, 0, 0]), 3.0);
    }

    #[test]
    fn wrong_rank_names_the_shape() {
        let g = Tensor::zeros([3, 4], (Kind::Float, tch::Device::Cpu));
        let msg = max_abs(&g).unwrap_err().to_string();
        assert!(msg.contains("[3, 4]"), "{msg}");
    }
}
