//! SqueezeNet 1.1 (Iandola et al., "SqueezeNet: AlexNet-level accuracy with
//! 50x fewer parameters and <0.5MB model size", arXiv:1602.07360) from the
//! crate's layers, with torchvision's variable and layer names
//! (`features.0` ... `features.12`, `classifier.1`): the same network as
//! torchvision's and tch's `vision::squeezenet::v1_1`, which the crate can
//! look inside (Guided Backprop, Grad-CAM) and which can score one class
//! alone.
//!
//! SqueezeNet's classifier is a 1x1 convolution from 512 channels to the
//! 1000 classes at 13 x 13, then ReLU and global average pooling: a quarter
//! of the network's multiply-adds, in the forward pass and again in the
//! backward pass. The gradient of one class's score needs only that class's
//! row of the classifier, which is what methods over copies of one image
//! (SmoothGrad, Integrated Gradients, Occlusion) ask for, batch after batch
//! (`crate/benches/LOG.md`: about a fifth of the time per sample).

use tch::nn;
use tch::Tensor;

use super::layers::{conv_input_grad, guided_relu, Fire, Layer, Pass};
use super::pool::max_pool2d_backward;

fn max_pool2d(xs: &Tensor) -> Tensor {
    super::pool::max_pool2d(xs, 3, 2, true)
}

/// The Fire modules: (name under `features`, input channels, squeeze
/// channels, expand channels of each branch).
const FIRES: [(i64, i64, i64, i64); 8] = [
    (3, 64, 16, 64),
    (4, 128, 16, 64),
    (6, 128, 32, 128),
    (7, 256, 32, 128),
    (9, 256, 48, 192),
    (10, 384, 48, 192),
    (11, 384, 64, 256),
    (12, 512, 64, 256),
];

/// SqueezeNet 1.1: the features (a convolution, then Fire modules with
/// max-pooling after the first convolution and the 2nd and 4th Fire
/// modules), then (dropout, inactive in evaluation) the classifier
/// convolution, ReLU and global average pooling.
///
/// An ordinary pass ([`Pass::is_plain`]) computes it in an order that gives
/// torchvision's numbers exactly and is faster on the CPU: ReLU after the
/// concatenation in each Fire module (see `Fire::pre_relu`), and max-pooling
/// before ReLU where torchvision pools after it. `max_pool(relu(x)) =
/// relu(max_pool(x))`, as ReLU does not decrease, and the gradient reaches the
/// same input: in a window with a positive maximum ReLU changes nothing,
/// elsewhere the gradient is zero either way; ReLU's backward pass then runs
/// on the pooled tensor, a quarter of the size. A pass that looks inside
/// runs torchvision's order, layer by layer, with torchvision's names.
/// (`crate/tests/smoothgrad.rs` checks the gradients against tch's
/// `vision::squeezenet::v1_1`.)
#[derive(Debug)]
pub struct SqueezeNet11 {
    conv1: nn::Conv2D,
    fires: Vec<Fire>,
    classifier: nn::Conv2D,
}

impl SqueezeNet11 {
    /// The network's variables under `p`, named as torchvision names them.
    #[must_use]
    pub fn new(p: &nn::Path, classes: i64) -> Self {
        let f = p / "features";
        let stride2 = nn::ConvConfig {
            stride: 2,
            ..Default::default()
        };
        let fires = FIRES
            .iter()
            .map(|&(name, c_in, squeeze, expand)| {
                Fire::new(&f / name, c_in, squeeze, expand, expand)
            })
            .collect();
        SqueezeNet11 {
            conv1: nn::conv2d(&f / "0", 3, 64, 3, stride2),
            fires,
            classifier: nn::conv2d(p / "classifier" / "1", 512, classes, 1, Default::default()),
        }
    }

    /// torchvision's `features`, `[N, 512, 13, 13]`, in the fast order,
    /// through `pass` at every ReLU.
    fn features(&self, xs: &Tensor, pass: &mut Pass) -> Tensor {
        let mut x = pass.relu(&max_pool2d(&xs.apply(&self.conv1)));
        for (i, fire) in self.fires.iter().enumerate() {
            let y = fire.pre_relu(&x, pass);
            // Max-pooling after the 2nd and the 4th Fire module.
            x = if i == 1 || i == 3 {
                pass.relu(&max_pool2d(&y))
            } else {
                pass.relu(&y)
            };
        }
        x
    }

    /// torchvision's order, through `pass`, each layer named.
    fn forward_traced(&self, xs: &Tensor, pass: &mut Pass, name: &str) -> Tensor {
        let n = |s: &str| {
            if name.is_empty() {
                s.to_string()
            } else {
                format!("{name}.{s}")
            }
        };
        let mut x = pass.layer(&n("features.0"), xs.apply(&self.conv1));
        x = pass.relu(&x);
        x = pass.layer(&n("features.1"), x);
        x = pass.layer(&n("features.2"), max_pool2d(&x));
        for (fire, &(index, ..)) in self.fires.iter().zip(&FIRES) {
            let full = n(&format!("features.{index}"));
            let y = fire.forward(&x, pass, &full);
            x = pass.layer(&full, y);
            if index == 4 || index == 7 {
                x = pass.layer(&n(&format!("features.{}", index + 1)), max_pool2d(&x));
            }
        }
        x = pass.layer(&n("classifier.0"), x); // dropout: inactive
        x = pass.layer(&n("classifier.1"), x.apply(&self.classifier));
        x = pass.relu(&x);
        x = pass.layer(&n("classifier.2"), x);
        x = pass.layer(&n("classifier.3"), x.adaptive_avg_pool2d([1, 1]));
        x.flatten(1, -1)
    }
}

impl SqueezeNet11 {
    /// The classifier's weight and bias for class `class` alone.
    fn class_row(&self, class: i64) -> (Tensor, Option<Tensor>) {
        let w = self.classifier.ws.narrow(0, class, 1);
        (
            w,
            self.classifier.bs.as_ref().map(|b| b.narrow(0, class, 1)),
        )
    }

    /// Guided Backprop's gradient of each image's target score, `[N, 3, H,
    /// W]`, by hand: a forward pass in torchvision's order that keeps what
    /// the backward pass needs (each ReLU's input, each pooling's indices),
    /// then the backward pass layer by layer with the guided rule at every
    /// ReLU. Through autograd the backward pass has to stop at each ReLU
    /// (tch's `run_backward` takes no gradient for its roots, so each stretch
    /// is seeded by a product over the activations); by hand it is the
    /// passes Captum's hooks make. The convolutions' input gradients are
    /// libtorch's transposed convolutions, which run the same backward-data
    /// kernels as autograd's convolution backward (on the lab's 25 images:
    /// 0.0 from Captum and from the guided pass; the unit test below allows
    /// rounding).
    fn guided_by_hand(&self, xs: &Tensor, targets: &[i64]) -> Tensor {
        tch::no_grad(|| {
            let pool = |x: &Tensor| super::pool::max_pool2d_with_indices(x, 3, 2, true);
            let a = xs.apply(&self.conv1);
            let (mut h, first_pool) = pool(&a.relu());
            // Per Fire module: its input's size, its squeeze and expand
            // pre-activations, and the indices of the pooling after it.
            let mut kept = Vec::with_capacity(self.fires.len());
            for (i, fire) in self.fires.iter().enumerate() {
                let input = h.size();
                let squeeze = fire.squeeze(&h);
                let expand = fire.expand(&squeeze.relu());
                let out = expand.relu();
                let pooled = if i == 1 || i == 3 {
                    let (p, indices) = pool(&out);
                    h = p;
                    Some(indices)
                } else {
                    h = out;
                    None
                };
                kept.push((input, squeeze, expand, pooled));
            }
            // The head: each image's score is the mean of relu(z) over the
            // positions of its class's map z = w . h + b.
            let grads: Vec<Tensor> = targets
                .iter()
                .enumerate()
                .map(|(i, &t)| {
                    let (w, b) = self.class_row(t);
                    let hi = h.narrow(0, i as i64, 1);
                    let z = hi.conv2d(&w, b.as_ref(), [1, 1], [0, 0], [1, 1], 1);
                    let seed = z.ones_like() / (z.size()[2] * z.size()[3]) as f64;
                    conv_input_grad(&guided_relu(&seed, &z), &w, 1, 0, &hi.size())
                })
                .collect();
            let mut g = Tensor::cat(&grads, 0);
            for (fire, (input, squeeze, expand, pooled)) in self.fires.iter().zip(kept).rev() {
                if let Some(indices) = pooled {
                    g = max_pool2d_backward(&g, &indices, &expand.size());
                }
                g = fire.expand_input_grad(&guided_relu(&g, &expand), &squeeze.size());
                g = fire.squeeze_input_grad(&guided_relu(&g, &squeeze), &input);
            }
            g = max_pool2d_backward(&g, &first_pool, &a.size());
            conv_input_grad(&guided_relu(&g, &a), &self.conv1.ws, 2, 0, &xs.size())
        })
    }
}

/// Classifier convolution, ReLU, global average pooling, `[N, classes]`.
fn head(features: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    features
        .conv2d(w, b, [1, 1], [0, 0], [1, 1], 1)
        .relu()
        .adaptive_avg_pool2d([1, 1])
        .flatten(1, -1)
}

impl Layer for SqueezeNet11 {
    /// The fast order for an ordinary pass. Not for Guided Backprop: where
    /// pooling windows overlap, torchvision's order sums the gradients of
    /// the windows that share a maximum before its ReLU rectifies the sum;
    /// pooling after the ReLU would rectify each window's gradient first.
    fn forward(&self, xs: &Tensor, pass: &mut Pass, name: &str) -> Tensor {
        if pass.is_plain() {
            let features = self.features(xs, pass);
            let x = features.conv2d(
                &self.classifier.ws,
                self.classifier.bs.as_ref(),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            );
            pass.relu(&x).adaptive_avg_pool2d([1, 1]).flatten(1, -1)
        } else {
            self.forward_traced(xs, pass, name)
        }
    }

    /// The features, then that class's row of the classifier only.
    fn class_score(&self, xs: &Tensor, class: i64) -> Option<Tensor> {
        let (w, b) = self.class_row(class);
        Some(head(&self.features(xs, &mut Pass::new()), &w, b.as_ref()).view([-1]))
    }

    fn num_classes(&self) -> Option<i64> {
        Some(self.classifier.ws.size()[0])
    }

    /// By hand (see `guided_by_hand`): the passes Captum's hooks make.
    fn guided_gradient(&self, x: &Tensor, targets: &[i64]) -> Option<Tensor> {
        Some(self.guided_by_hand(x, targets))
    }

    /// The features once, then each image's class row of the classifier
    /// (bit for bit the whole classifier's numbers, a tenth faster).
    fn target_scores(&self, xs: &Tensor, targets: &[i64]) -> Option<Tensor> {
        let features = self.features(xs, &mut Pass::new());
        let scores: Vec<Tensor> = targets
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let (w, b) = self.class_row(t);
                head(&features.narrow(0, i as i64, 1), &w, b.as_ref()).view([-1])
            })
            .collect();
        Some(Tensor::cat(&scores, 0))
    }

    fn layer_names(&self, name: &str, out: &mut Vec<String>) {
        let prefix = if name.is_empty() {
            String::new()
        } else {
            format!("{name}.")
        };
        out.extend((0..=12).map(|i| format!("{prefix}features.{i}")));
        out.extend((0..=3).map(|i| format!("{prefix}classifier.{i}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::guided_gradient;
    use tch::{nn, Device, Kind};

    /// Guided Backprop by hand equals the guided pass through autograd (the
    /// generic route, one ReLU at a time) to rounding, on random weights.
    #[test]
    fn guided_backprop_by_hand_equals_the_guided_pass() {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = SqueezeNet11::new(&vs.root(), 10);
        let x = Tensor::randn([2, 3, 96, 96], (Kind::Float, Device::Cpu));
        let targets = [3, 7];
        let input = x.detach().set_requires_grad(true);
        let mut pass = Pass::guided();
        let logits = net.forward_traced(&input, &mut pass, "");
        let score = logits
            .gather(1, &Tensor::from_slice(&targets).view([2, 1]), false)
            .sum(Kind::Float);
        let traced = guided_gradient(pass, &score, &input).unwrap();
        let by_hand = net.guided_by_hand(&x, &targets);
        assert_eq!(by_hand.size(), x.size());
        let err = (&by_hand - &traced).norm().double_value(&[]) / traced.norm().double_value(&[]);
        assert!(traced.norm().double_value(&[]) > 0.0);
        assert!(err <= 1e-5, "relative error {err:.1e}");
    }
}
