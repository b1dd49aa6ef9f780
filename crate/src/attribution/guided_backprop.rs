//! Guided Backprop (Springenberg, Dosovitskiy, Brox and Riedmiller,
//! "Striving for Simplicity: The All Convolutional Net", ICLR workshop 2015):
//! the gradient of the target score, with every ReLU passing back only
//! positive gradients, and only where its input was positive. Captum:
//! `GuidedBackprop` (which overrides the backward pass of `nn.ReLU` modules
//! the same way).
//!
//! It needs to see the network's ReLUs: it works on networks that can be
//! looked inside ([`Network::inspect`]: SqueezeNet from
//! [`squeezenet1_1`](crate::squeezenet1_1), networks built from the crate's
//! [`layers`](crate::model::layers)), not on an opaque tch module. A network
//! that computes it by hand ([`FastPaths::guided_gradient`](crate::model::FastPaths::guided_gradient):
//! SqueezeNet with [`Numerics::Fast`](crate::model::Numerics::Fast)) does so
//! with this module's rule, [`guided_relu`]; any other goes through a guided
//! [`Pass`], one stretch of autograd's backward pass between ReLUs at a time
//! ([`guided_gradient`]).

use tch::Tensor;

use super::{check_input, Attributions, Method};
use crate::error::{Error, Result};
use crate::model::{Inspect, Network, Pass, ReluRule};
use crate::support::{catch_libtorch, in_chunks, target_score_sum};

/// Guided Backprop (no parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuidedBackprop;

/// Guided Backprop's rule at a ReLU whose input was `pre`: the incoming
/// gradient's positive part where `pre` was positive (Captum's).
pub fn guided_relu(grad: &Tensor, pre: &Tensor) -> Tensor {
    pre.threshold_backward(&grad.relu(), 0.0)
}

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

/// The view inside `net`, or the error that says it is opaque.
pub(crate) fn inspect<'a>(op: &'static str, net: &'a dyn Network) -> Result<&'a dyn Inspect> {
    net.inspect().ok_or_else(|| opaque(op))
}

/// The gradient of `score`, a scalar computed from `input` (a tensor that
/// records gradients) by a pass made with [`Pass::guided`], with respect to
/// `input`, by Guided Backprop's rule ([`guided_relu`]) at every ReLU.
///
/// The backward pass runs one stretch between ReLUs at a time, from the last
/// ReLU to the first, so each rectified gradient is complete (every later
/// use of that ReLU's output has given its part) before it goes on.
///
/// # Errors
/// [`Error::Torch`] if libtorch fails.
pub fn guided_gradient(pass: Pass, score: &Tensor, input: &Tensor) -> Result<Tensor> {
    rule_gradient(pass, score, input, &guided_relu)
}

/// The gradient of `score` (computed from `input` by a pass made with
/// [`Pass::guided`]) with respect to `input`, with `rule` in place of every
/// ReLU's backward pass ([`guided_relu`] is Guided Backprop's,
/// [`deconv_relu`](super::deconv_relu) Deconvolution's), one stretch between
/// ReLUs at a time as [`guided_gradient`] does.
///
/// # Errors
/// [`Error::Torch`] if libtorch fails.
pub fn rule_gradient(pass: Pass, score: &Tensor, input: &Tensor, rule: ReluRule) -> Result<Tensor> {
    let relus = pass.into_relus();
    let mut leaves: Vec<&Tensor> = vec![input];
    leaves.extend(relus.iter().map(|(_, leaf)| leaf));
    let mut grads: Vec<Option<Tensor>> = (0..leaves.len()).map(|_| None).collect();
    let add = |grads: &mut Vec<Option<Tensor>>, new: Vec<Tensor>| {
        for (slot, g) in grads.iter_mut().zip(new) {
            if g.defined() {
                *slot = Some(match slot.take() {
                    Some(acc) => acc + g,
                    None => g,
                });
            }
        }
    };
    let top = Tensor::f_run_backward(&[score], &leaves, false, false)?;
    add(&mut grads, top);
    for i in (0..relus.len()).rev() {
        let Some(g) = grads[i + 1].take() else {
            continue;
        };
        let pre = &relus[i].0;
        // The rule's gradient at the ReLU's input; the backward pass of the
        // scalar `pre . rectified` hands `rectified` to `pre` (libtorch
        // takes no gradient for a root, and a product as the root would cost
        // two more passes over the activations: the product and its seed).
        let rectified = rule(&g, &pre.detach());
        let root = pre.reshape([-1]).dot(&rectified.reshape([-1]));
        let below = Tensor::f_run_backward(&[root], &leaves[..=i], false, false)?;
        add(&mut grads, below);
    }
    Ok(grads[0].take().unwrap_or_else(|| input.zeros_like()))
}

impl Method for GuidedBackprop {
    fn name(&self) -> String {
        "guided-backprop".into()
    }

    fn attribute(&self, net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Attributions> {
        relu_rule_attribute("guided_backprop", net, x, targets, &guided_relu)
    }
}

/// The gradient of each image's target score with `rule` at every ReLU: by
/// hand where the network offers it ([`FastPaths::guided_gradient`](crate::model::FastPaths::guided_gradient)),
/// else by a pass through the network's inside ([`rule_gradient`]).
pub(crate) fn relu_rule_attribute(
    op: &'static str,
    net: &dyn Network,
    x: &Tensor,
    targets: &[i64],
    rule: ReluRule,
) -> Result<Attributions> {
    check_input(op, x, targets)?;
    // By hand where the network can and the targets are its classes
    // (else the traced pass, which says which target is wrong).
    let by_hand = net
        .num_classes()
        .is_some_and(|c| targets.iter().all(|t| (0..c).contains(t)));
    let values = in_chunks(x, targets, |x, t| {
        if let Some(fast) = net.fast().filter(|_| by_hand) {
            if let Some(g) = catch_libtorch(x, || fast.guided_gradient(x, t, rule))? {
                return Ok(g);
            }
        }
        let view = inspect(op, net)?;
        let input = x.detach().set_requires_grad(true);
        let mut pass = Pass::guided();
        let logits = catch_libtorch(&input, || view.logits_traced(&input, &mut pass))?;
        let score = target_score_sum(&logits, t, op)?;
        rule_gradient(pass, &score, &input, rule)
    })?;
    Ok(Attributions::checked(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, Numerics, SqueezeNet11};
    use tch::{nn, Device, Kind};

    #[test]
    fn guided_relu_passes_back_only_positive_gradients_at_positive_inputs() {
        // y = sum(w * relu(x)) with x = (1, -1, 2), w = (1, 1, -1): the plain
        // gradient is w * (x > 0) = (1, 0, -1); the guided one drops the
        // negative gradient too: (1, 0, 0).
        let x = Tensor::from_slice(&[1.0f32, -1.0, 2.0]).set_requires_grad(true);
        let w = Tensor::from_slice(&[1.0f32, 1.0, -1.0]);
        let mut pass = Pass::guided();
        let score = (pass.relu(&(&x * 1.0)) * &w).sum(Kind::Float);
        let g = guided_gradient(pass, &score, &x).unwrap();
        assert_eq!(Vec::<f32>::try_from(g).unwrap(), [1.0, 0.0, 0.0]);
    }

    #[test]
    fn guided_gradient_sums_every_use_of_a_relu() {
        // r = relu(x); y = relu(2 r) + relu(-r) at x = 1. The outer ReLUs
        // pass back 1 (input 2 > 0) and 0 (input -1): r gets 2 * 1 + (-1) * 0
        // = 2, positive at a positive input, so x gets 2.
        let x = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut pass = Pass::guided();
        let r = pass.relu(&(&x * 1.0));
        let score = (pass.relu(&(&r * 2.0)) + pass.relu(&(&r * -1.0))).sum(Kind::Float);
        let g = guided_gradient(pass, &score, &x).unwrap();
        assert_eq!(Vec::<f32>::try_from(g).unwrap(), [2.0]);
    }

    /// Guided Backprop by hand (SqueezeNet's fast path) equals the guided
    /// pass through autograd (the generic route, one ReLU at a time) to
    /// rounding, on random weights.
    #[test]
    fn guided_backprop_by_hand_equals_the_guided_pass() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = SqueezeNet11::new(&vs.root(), 10);
        let model = Model::squeezenet(vs, net);
        let x = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
        let targets = [3, 7];
        let by_hand = GuidedBackprop
            .attribute(&model, &x, &targets)
            .unwrap()
            .values;
        let model = model.with_numerics(Numerics::PyTorch);
        let traced = GuidedBackprop
            .attribute(&model, &x, &targets)
            .unwrap()
            .values;
        assert_eq!(by_hand.size(), x.size());
        let err = (&by_hand - &traced).norm().double_value(&[]) / traced.norm().double_value(&[]);
        assert!(traced.norm().double_value(&[]) > 0.0);
        assert!(err <= 1e-5, "relative error {err:.1e}");
    }
}
