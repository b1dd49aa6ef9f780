//! Guided Backprop (Springenberg, Dosovitskiy, Brox and Riedmiller,
//! "Striving for Simplicity: The All Convolutional Net", ICLR workshop 2015):
//! the gradient of the target score, with every ReLU passing back only
//! positive gradients, and only where its input was positive. Captum:
//! `GuidedBackprop` (which overrides the backward pass of `nn.ReLU` modules
//! the same way).
//!
//! It needs to see the network's ReLUs: it works on networks built from the
//! crate's [`layers`](crate::model::layers) (SqueezeNet from
//! [`squeezenet1_1`](crate::squeezenet1_1) among them), not on an opaque tch
//! module. A network that computes it by hand
//! ([`Network::guided_gradient`]: SqueezeNet) does so; any other goes through
//! a guided [`Pass`], one stretch of autograd's backward pass between ReLUs at
//! a time.

use tch::Tensor;

use super::{check_input, Attributions, Method};
use crate::error::{Error, Result};
use crate::model::layers::guided_gradient;
use crate::model::{Layout, Network, Pass};
use crate::support::{catch_libtorch, in_chunks, target_score_sum};

/// Guided Backprop (no parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuidedBackprop;

/// The error for a network that cannot be looked inside.
pub(crate) fn opaque(op: &'static str) -> Error {
    Error::Unsupported {
        op,
        needs:
            "this method looks inside the network (its ReLUs, a named layer), and this one is an \
                opaque tch module: use squeezenet1_1, or build the network from \
                saliency_lab::model::layers and wrap it with Model::from_layers"
                .into(),
    }
}

/// The logits of `x` (laid out as `layout`) through a pass that looks inside
/// `net`.
pub(crate) fn traced_logits(
    op: &'static str,
    net: &dyn Network,
    x: &Tensor,
    pass: &mut Pass,
    layout: Layout,
) -> Result<Tensor> {
    catch_libtorch(x, || net.logits_traced(x, pass, layout))?.ok_or_else(|| opaque(op))
}

impl Method for GuidedBackprop {
    fn name(&self) -> String {
        "guided-backprop".into()
    }

    fn attribute(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Attributions> {
        const OP: &str = "guided_backprop";
        check_input(OP, x, targets)?;
        // By hand where the network can and the targets are its classes
        // (else the traced pass, which says which target is wrong).
        let by_hand = net
            .num_classes()
            .is_some_and(|c| targets.iter().all(|t| (0..c).contains(t)));
        let values = in_chunks(x, targets, |x, t| {
            if by_hand {
                if let Some(g) = catch_libtorch(x, || net.guided_gradient(x, t))? {
                    return Ok(g);
                }
            }
            let input = x.detach().set_requires_grad(true);
            let mut pass = Pass::guided();
            let logits = traced_logits(OP, net, &input, &mut pass, Layout::Contiguous)?;
            let score = target_score_sum(&logits, t, OP)?;
            guided_gradient(pass, &score, &input)
        })?;
        Ok(Attributions::checked(values))
    }
}
