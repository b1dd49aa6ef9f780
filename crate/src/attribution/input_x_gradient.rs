//! Input x Gradient (Shrikumar, Greenside, Shcherbina and Kundaje, "Not Just
//! a Black Box: Learning Important Features Through Propagating Activation
//! Differences", 2016): the input times the gradient of the target score, a
//! first-order estimate of each pixel's contribution. Captum:
//! `InputXGradient`.

use tch::Tensor;

use super::{copies_gradient, gradient, Attributions, Batch, Method};
use crate::error::Result;
use crate::model::Network;

/// Input x Gradient (no parameters): `x * d score / d x`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputXGradient;

impl Method for InputXGradient {
    fn name(&self) -> String {
        "input-x-gradient".into()
    }

    fn op(&self) -> &'static str {
        "input_x_gradient"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        Ok(Attributions::checked(batch.x() * gradient(net, batch)?))
    }

    fn attribute_copies(&self, net: &dyn Network, copies: &Tensor, target: i64) -> Result<Tensor> {
        Ok(copies * copies_gradient(net, copies, target)?)
    }
}
