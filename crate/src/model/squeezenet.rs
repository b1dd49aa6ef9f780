//! SqueezeNet 1.1 split into its feature extractor and its classifier, with
//! torchvision's variable names (the same network as
//! `tch::vision::squeezenet::v1_1`), so that the score of one class can be
//! computed alone.
//!
//! SqueezeNet's classifier is a 1x1 convolution from 512 channels to the
//! 1000 classes at 13 x 13, then ReLU and global average pooling: a quarter
//! of the network's multiply-adds, in the forward pass and again in the
//! backward pass. The gradient of one class's score needs only that class's
//! row of the classifier, which is what SmoothGrad asks for, batch after
//! batch (`crate/benches/LOG.md`: about a fifth of the time per sample).

use tch::nn::{self, ModuleT};
use tch::Tensor;

fn max_pool2d(xs: &Tensor) -> Tensor {
    xs.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true)
}

/// A Fire module: a 1x1 "squeeze" convolution with ReLU, then 1x1 and 3x3
/// "expand" convolutions side by side.
#[derive(Debug)]
struct Fire {
    squeeze: nn::Conv2D,
    expand1x1: nn::Conv2D,
    expand3x3: nn::Conv2D,
}

impl Fire {
    fn new(p: nn::Path, c_in: i64, c_squeeze: i64, c_exp1: i64, c_exp3: i64) -> Self {
        let cfg3 = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        Fire {
            squeeze: nn::conv2d(&p / "squeeze", c_in, c_squeeze, 1, Default::default()),
            expand1x1: nn::conv2d(&p / "expand1x1", c_squeeze, c_exp1, 1, Default::default()),
            expand3x3: nn::conv2d(&p / "expand3x3", c_squeeze, c_exp3, 3, cfg3),
        }
    }

    /// The module's output before its final ReLU: torchvision applies ReLU
    /// to each expand branch, then concatenates; `relu(cat(a, b))` is the
    /// same tensor, and its gradient the same, with one ReLU over a
    /// contiguous tensor instead of two over channel slices (in NHWC layout
    /// those are strided, and ReLU's backward pass was slow on them).
    fn pre_relu(&self, xs: &Tensor) -> Tensor {
        let s = xs.apply(&self.squeeze).relu();
        Tensor::cat(&[s.apply(&self.expand1x1), s.apply(&self.expand3x3)], 1)
    }
}

/// SqueezeNet 1.1: the features (a convolution, then Fire modules with
/// max-pooling after the first convolution and the 2nd and 4th Fire
/// modules), then (dropout, inactive in evaluation) the classifier
/// convolution, ReLU and global average pooling.
///
/// Computed in an order that gives torchvision's numbers exactly and is
/// faster on the CPU: ReLU after concatenation (see `Fire::pre_relu`), and
/// max-pooling before ReLU where torchvision pools after it.
/// `max_pool(relu(x)) = relu(max_pool(x))`, as ReLU does not decrease, and
/// the gradient reaches the same input: in a window with a positive maximum
/// ReLU changes nothing, elsewhere the gradient is zero either way; ReLU's
/// backward pass then runs on the pooled tensor, a quarter of the size.
/// (`crate/tests/smoothgrad.rs` checks the gradients against tch's
/// `vision::squeezenet::v1_1`.)
#[derive(Debug)]
pub(crate) struct SqueezeNet11 {
    conv1: nn::Conv2D,
    fires: Vec<Fire>,
    classifier: nn::Conv2D,
}

impl SqueezeNet11 {
    /// The network's variables under `p`, named as torchvision names them.
    pub(crate) fn new(p: &nn::Path, classes: i64) -> Self {
        let f = p / "features";
        let stride2 = nn::ConvConfig {
            stride: 2,
            ..Default::default()
        };
        let fires = [
            ("3", 64, 16, 64),
            ("4", 128, 16, 64),
            ("6", 128, 32, 128),
            ("7", 256, 32, 128),
            ("9", 256, 48, 192),
            ("10", 384, 48, 192),
            ("11", 384, 64, 256),
            ("12", 512, 64, 256),
        ]
        .into_iter()
        .map(|(name, c_in, squeeze, expand)| Fire::new(&f / name, c_in, squeeze, expand, expand))
        .collect();
        SqueezeNet11 {
            conv1: nn::conv2d(&f / "0", 3, 64, 3, stride2),
            fires,
            classifier: nn::conv2d(p / "classifier" / "1", 512, classes, 1, Default::default()),
        }
    }

    /// torchvision's `features`, `[N, 512, 13, 13]`.
    fn features(&self, xs: &Tensor) -> Tensor {
        let mut x = max_pool2d(&xs.apply(&self.conv1)).relu();
        for (i, fire) in self.fires.iter().enumerate() {
            let y = fire.pre_relu(&x);
            // Max-pooling after the 2nd and the 4th Fire module.
            x = if i == 1 || i == 3 {
                max_pool2d(&y).relu()
            } else {
                y.relu()
            };
        }
        x
    }

    /// The number of classes.
    pub(crate) fn classes(&self) -> i64 {
        self.classifier.ws.size()[0]
    }

    /// The score of class `class` (in `0..classes()`) for every image, `[N]`:
    /// the features, then that class's row of the classifier only.
    pub(crate) fn class_score(&self, xs: &Tensor, class: i64) -> Tensor {
        let w = self.classifier.ws.narrow(0, class, 1);
        let b = self.classifier.bs.as_ref().map(|b| b.narrow(0, class, 1));
        head(&self.features(xs), &w, b.as_ref()).view([-1])
    }
}

/// Classifier convolution, ReLU, global average pooling, `[N, classes]`.
fn head(features: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    features
        .conv2d(w, b, [1, 1], [0, 0], [1, 1], 1)
        .relu()
        .adaptive_avg_pool2d([1, 1])
        .flat_view()
}

impl ModuleT for SqueezeNet11 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let features = self.features(xs).dropout(0.5, train);
        head(&features, &self.classifier.ws, self.classifier.bs.as_ref())
    }
}
