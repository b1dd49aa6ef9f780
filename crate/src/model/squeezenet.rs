//! SqueezeNet 1.1 (Iandola et al., "SqueezeNet: AlexNet-level accuracy with
//! 50x fewer parameters and <0.5MB model size", arXiv:1602.07360), written
//! once as torchvision writes it: the same layers in the same order, with
//! torchvision's variable and layer names (`features.0` ... `features.12`,
//! `classifier.1`), and libtorch's own operations (tch's
//! `vision::squeezenet::v1_1`, which the tests hold it to). The crate can
//! look inside it (Guided Backprop, Grad-CAM). Its faster twin, which gives
//! the same numbers in another order, is in `model/fast/`.

use tch::nn;
use tch::Tensor;

use super::layers::{Layer, Pass};
use super::network::{Inspect, Network};
use super::rules::ConvParams;

/// A 2-D convolution's weights and geometry: tch's `nn::Conv2D` (zero
/// padding, no dilation, one group) as plain tensors, so that the same
/// forward pass can run on another copy of the weights (`model/fast/`: NHWC).
#[derive(Debug)]
pub(crate) struct Conv {
    pub(crate) w: Tensor,
    pub(crate) b: Option<Tensor>,
    pub(crate) stride: i64,
    pub(crate) padding: i64,
}

impl Conv {
    /// The variables `weight` and `bias` under `p`, as `nn::conv2d` makes them.
    fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64) -> Self {
        let config = nn::ConvConfig {
            stride,
            padding,
            ..Default::default()
        };
        let conv = nn::conv2d(p, c_in, c_out, kernel, config);
        Conv {
            w: conv.ws,
            b: conv.bs,
            stride,
            padding,
        }
    }

    /// `x` through the convolution: exactly tch's `Conv2D::forward`.
    pub(crate) fn apply(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.w,
            self.b.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }

    /// `x` through the convolution, seen by `pass`.
    pub(crate) fn through(&self, pass: &mut Pass, x: &Tensor) -> Tensor {
        let (s, p) = (self.stride, self.padding);
        pass.conv2d(x, &self.w, self.b.as_ref(), [s, s], [p, p], [1, 1], 1)
    }

    /// Its parameters as the rules see them.
    pub(crate) fn params(&self) -> ConvParams {
        ConvParams {
            w: self.w.shallow_clone(),
            b: self.b.as_ref().map(Tensor::shallow_clone),
            stride: [self.stride; 2],
            padding: [self.padding; 2],
            dilation: [1, 1],
            groups: 1,
        }
    }

    /// The same convolution on `w` (another copy of the weight); the bias is
    /// shared.
    pub(crate) fn with_weight(&self, w: Tensor) -> Conv {
        Conv {
            w,
            b: self.b.as_ref().map(Tensor::shallow_clone),
            stride: self.stride,
            padding: self.padding,
        }
    }
}

/// SqueezeNet's Fire module: a 1x1 "squeeze" convolution with ReLU, then 1x1
/// and 3x3 "expand" convolutions side by side, each with ReLU, concatenated
/// (torchvision's variable names: `squeeze`, `expand1x1`, `expand3x3`).
#[derive(Debug)]
pub struct Fire {
    pub(crate) squeeze: Conv,
    pub(crate) expand1x1: Conv,
    pub(crate) expand3x3: Conv,
}

impl Fire {
    /// A Fire module from `c_in` channels, squeezing to `c_squeeze`, expanding
    /// to `c_exp1 + c_exp3`.
    #[must_use]
    pub fn new(p: nn::Path, c_in: i64, c_squeeze: i64, c_exp1: i64, c_exp3: i64) -> Self {
        Fire {
            squeeze: Conv::new(&p / "squeeze", c_in, c_squeeze, 1, 1, 0),
            expand1x1: Conv::new(&p / "expand1x1", c_squeeze, c_exp1, 1, 1, 0),
            expand3x3: Conv::new(&p / "expand3x3", c_squeeze, c_exp3, 3, 1, 1),
        }
    }
}

impl Layer for Fire {
    /// torchvision's `Fire.forward`: squeeze, ReLU, both expands with their
    /// ReLUs, concatenated.
    fn forward(&self, x: &Tensor, pass: &mut Pass, _name: &str) -> Tensor {
        let squeezed = self.squeeze.through(pass, x);
        let s = pass.relu(&squeezed);
        let e1 = self.expand1x1.through(pass, &s);
        let e1 = pass.relu(&e1);
        let e3 = self.expand3x3.through(pass, &s);
        let e3 = pass.relu(&e3);
        Tensor::cat(&[e1, e3], 1)
    }
}

/// The Fire modules: (name under `features`, input channels, squeeze
/// channels, expand channels of each branch).
pub(crate) const FIRES: [(i64, i64, i64, i64); 8] = [
    (3, 64, 16, 64),
    (4, 128, 16, 64),
    (6, 128, 32, 128),
    (7, 256, 32, 128),
    (9, 256, 48, 192),
    (10, 384, 48, 192),
    (11, 384, 64, 256),
    (12, 512, 64, 256),
];

/// Whether max-pooling follows the Fire module at position `i` (0-based):
/// after the 2nd and the 4th.
pub(crate) fn pools_after(i: usize) -> bool {
    i == 1 || i == 3
}

/// SqueezeNet's max-pooling: 3 x 3 windows, stride 2, partial windows kept.
pub(crate) const POOL: (i64, i64, bool) = (3, 2, true);

fn max_pool2d(pass: &mut Pass, x: &Tensor) -> Tensor {
    let (kernel, stride, ceil_mode) = POOL;
    pass.max_pool2d(x, kernel, stride, ceil_mode)
}

/// SqueezeNet 1.1: the features (a convolution, then Fire modules with
/// max-pooling after the first convolution and the 2nd and 4th Fire
/// modules), then (dropout, inactive in evaluation) the classifier
/// convolution, ReLU and global average pooling.
#[derive(Debug)]
pub struct SqueezeNet11 {
    pub(crate) conv1: Conv,
    pub(crate) fires: Vec<Fire>,
    pub(crate) classifier: Conv,
}

impl SqueezeNet11 {
    /// The network's variables under `p`, named as torchvision names them.
    #[must_use]
    pub fn new(p: &nn::Path, classes: i64) -> Self {
        let f = p / "features";
        let fires = FIRES
            .iter()
            .map(|&(name, c_in, squeeze, expand)| {
                Fire::new(&f / name, c_in, squeeze, expand, expand)
            })
            .collect();
        SqueezeNet11 {
            conv1: Conv::new(&f / "0", 3, 64, 3, 2, 0),
            fires,
            classifier: Conv::new(p / "classifier" / "1", 512, classes, 1, 1, 0),
        }
    }

    /// The same network on other copies of the weights: `weight` maps each
    /// convolution's weight to the one to use (the biases are shared).
    pub(crate) fn map_weights(&self, weight: impl Fn(&Tensor) -> Tensor) -> SqueezeNet11 {
        let fire = |f: &Fire| Fire {
            squeeze: f.squeeze.with_weight(weight(&f.squeeze.w)),
            expand1x1: f.expand1x1.with_weight(weight(&f.expand1x1.w)),
            expand3x3: f.expand3x3.with_weight(weight(&f.expand3x3.w)),
        };
        SqueezeNet11 {
            conv1: self.conv1.with_weight(weight(&self.conv1.w)),
            fires: self.fires.iter().map(fire).collect(),
            classifier: self.classifier.with_weight(weight(&self.classifier.w)),
        }
    }

    /// Every convolution, from the input to the output.
    pub(crate) fn convs(&self) -> Vec<&Conv> {
        let mut all = vec![&self.conv1];
        for f in &self.fires {
            all.extend([&f.squeeze, &f.expand1x1, &f.expand3x3]);
        }
        all.push(&self.classifier);
        all
    }
}

impl Layer for SqueezeNet11 {
    /// torchvision's `SqueezeNet.forward`, layer by layer, each named.
    fn forward(&self, xs: &Tensor, pass: &mut Pass, name: &str) -> Tensor {
        let n = |s: &str| {
            if name.is_empty() {
                s.to_string()
            } else {
                format!("{name}.{s}")
            }
        };
        let conv1 = self.conv1.through(pass, xs);
        let mut x = pass.layer(&n("features.0"), conv1);
        x = pass.relu(&x);
        x = pass.layer(&n("features.1"), x);
        let pooled = max_pool2d(pass, &x);
        x = pass.layer(&n("features.2"), pooled);
        for (i, (fire, &(index, ..))) in self.fires.iter().zip(&FIRES).enumerate() {
            let full = n(&format!("features.{index}"));
            let y = fire.forward(&x, pass, &full);
            x = pass.layer(&full, y);
            if pools_after(i) {
                let pooled = max_pool2d(pass, &x);
                x = pass.layer(&n(&format!("features.{}", index + 1)), pooled);
            }
        }
        x = pass.layer(&n("classifier.0"), x); // dropout: inactive
        let logits = self.classifier.through(pass, &x);
        x = pass.layer(&n("classifier.1"), logits);
        x = pass.relu(&x);
        x = pass.layer(&n("classifier.2"), x);
        let pooled = pass.global_avg_pool(&x);
        x = pass.layer(&n("classifier.3"), pooled);
        x.flatten(1, -1)
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

impl Network for SqueezeNet11 {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward(x, &mut Pass::new(), "")
    }

    fn num_classes(&self) -> Option<i64> {
        Some(self.classifier.w.size()[0])
    }

    fn inspect(&self) -> Option<&dyn Inspect> {
        Some(self)
    }
}

impl Inspect for SqueezeNet11 {
    fn logits_traced(&self, x: &Tensor, pass: &mut Pass) -> Tensor {
        self.forward(x, pass, "")
    }

    fn layer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        Layer::layer_names(self, "", &mut names);
        names
    }
}
