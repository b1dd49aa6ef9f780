//! Deconvolution (Zeiler and Fergus, "Visualizing and Understanding
//! Convolutional Networks", ECCV 2014): the gradient of the target score
//! with every ReLU passing back the positive part of the incoming gradient,
//! whatever its input was (Guided Backprop also requires the input to be
//! positive). Captum: `Deconvolution` (which overrides the backward pass of
//! `nn.ReLU` modules the same way).
//!
//! Like Guided Backprop it needs to see the network's ReLUs: SqueezeNet from
//! [`squeezenet1_1`](crate::squeezenet1_1) (by hand on its fast path) and
//! networks built from the crate's [`layers`](crate::model::layers), not an
//! opaque tch module.

use tch::Tensor;

use super::propagation::{as_it_is, attribute_with_rules, the_relevance};
use super::{Attributions, Batch, Method};
use crate::error::Result;
use crate::model::rules::ReluRules;
use crate::model::Network;

/// Deconvolution (no parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deconvolution;

/// Deconvolution's rule at a ReLU: the incoming gradient's positive part,
/// the ReLU's input ignored (Captum's `F.relu(grad_output)`).
pub fn deconv_relu(grad: &Tensor, _pre: &Tensor) -> Tensor {
    grad.relu()
}

impl Method for Deconvolution {
    fn name(&self) -> String {
        "deconvolution".into()
    }

    fn op(&self) -> &'static str {
        "deconvolution"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let rules = ReluRules(&deconv_relu);
        attribute_with_rules(self.op(), net, batch, &rules, &as_it_is, &the_relevance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::propagation::propagate;
    use crate::model::{Model, Numerics, Pass, SqueezeNet11};
    use tch::{nn, Device, Kind};

    #[test]
    fn deconvolution_passes_back_positive_gradients_at_any_input() {
        // y = sum(w * relu(x)) with x = (1, -1, 2), w = (1, 1, -1): the
        // gradient is (1, 0, -1); Guided Backprop's (1, 0, 0); Deconvolution
        // passes relu(w) = (1, 1, 0), the negative input included.
        let x = Tensor::from_slice(&[1.0f32, -1.0, 2.0]).set_requires_grad(true);
        let w = Tensor::from_slice(&[1.0f32, 1.0, -1.0]);
        let mut pass = Pass::guided();
        let score = (pass.relu(&(&x * 1.0)) * &w).sum(Kind::Float);
        let g = propagate(pass, &score, &x, &ReluRules(&deconv_relu)).unwrap();
        assert_eq!(Vec::<f32>::try_from(g).unwrap(), [1.0, 1.0, 0.0]);
    }

    /// By hand (SqueezeNet's fast path) and through the traced pass: the
    /// same maps to rounding, on random weights.
    #[test]
    fn deconvolution_by_hand_equals_the_traced_pass() {
        tch::manual_seed(6);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = SqueezeNet11::new(&vs.root(), 10);
        let model = Model::squeezenet(vs, net);
        let x = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
        let by_hand = Deconvolution.attribute(&model, &x, &[1, 8]).unwrap().values;
        let model = model.with_numerics(Numerics::PyTorch);
        let traced = Deconvolution.attribute(&model, &x, &[1, 8]).unwrap().values;
        let err = (&by_hand - &traced).norm().double_value(&[]) / traced.norm().double_value(&[]);
        assert!(traced.norm().double_value(&[]) > 0.0);
        assert!(err <= 1e-5, "relative error {err:.1e}");
    }
}
