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
//! that computes it by hand ([`FastPaths::propagate`](crate::model::FastPaths::propagate):
//! SqueezeNet with [`Numerics::Fast`](crate::model::Numerics::Fast)) does so
//! with this module's rule, [`guided_relu`]; any other goes through a guided
//! [`Pass`], one stretch of autograd's backward pass between ReLUs at a time
//! ([`guided_gradient`], [`propagate`]).

use tch::Tensor;

use super::propagation::{as_it_is, attribute_with_rules, propagate, the_relevance};
use super::{Attributions, Batch, Method};
use crate::error::{Error, Result};
use crate::model::rules::ReluRules;
use crate::model::{Inspect, Network, Pass};

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
/// `input`, by Guided Backprop's rule ([`guided_relu`]) at every ReLU
/// ([`propagate`]: from the last ReLU to the first, so each rectified
/// gradient is complete before it goes on).
///
/// # Errors
/// [`Error::Torch`] if libtorch fails.
pub fn guided_gradient(pass: Pass, score: &Tensor, input: &Tensor) -> Result<Tensor> {
    propagate(pass, score, input, &ReluRules(&guided_relu))
}

impl Method for GuidedBackprop {
    fn name(&self) -> String {
        "guided-backprop".into()
    }

    fn op(&self) -> &'static str {
        "guided_backprop"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let rules = ReluRules(&guided_relu);
        attribute_with_rules(self.op(), net, batch, &rules, &as_it_is, &the_relevance)
    }
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
        // Each image's top class: its score is positive, so the map is not
        // zero whatever the draws (the tests share libtorch's generator, so
        // the seed does not fix them).
        let targets = Vec::<i64>::try_from(model.logits(&x).argmax(1, false)).unwrap();
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
