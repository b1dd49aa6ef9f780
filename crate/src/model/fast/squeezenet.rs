//! SqueezeNet 1.1's fast paths: torchvision's numbers in another order and
//! layout (`crate/benches/LOG.md` has each trick's measurement).
//!
//! - **Order.** ReLU after the concatenation in each Fire module:
//!   torchvision applies ReLU to each expand branch, then concatenates;
//!   `relu(cat(a, b))` is the same tensor with the same gradient (Guided
//!   Backprop's rule included: it is elementwise), from one ReLU over a
//!   contiguous tensor instead of two over channel slices (strided in NHWC,
//!   where ReLU's backward pass was slow on them). And max-pooling before
//!   ReLU where torchvision pools after it: `max_pool(relu(x)) =
//!   relu(max_pool(x))`, as ReLU does not decrease, and the gradient reaches
//!   the same input (in a window with a positive maximum ReLU changes
//!   nothing, elsewhere the gradient is zero either way); ReLU's backward
//!   pass then runs on the pooled tensor, a quarter of the size. Not for
//!   Guided Backprop's traced pass: where pooling windows overlap,
//!   torchvision's order sums the gradients of the windows that share a
//!   maximum before its ReLU rectifies the sum.
//! - **Pooling**: the crate's kernel ([`super::pool`]), libtorch's numbers.
//! - **One class alone.** SqueezeNet's classifier is a 1x1 convolution from
//!   512 channels to the 1000 classes at 13 x 13, then ReLU and global
//!   average pooling: a quarter of the network's multiply-adds, in the
//!   forward pass and again in the backward pass. The gradient of one
//!   class's score needs only that class's row of the classifier.
//! - **NHWC** weights for batches of copies of one image, on the CPU, where
//!   libtorch's convolutions run about 1.4 times faster. They are copies of
//!   the model's weights, refreshed by [`FastSqueezeNet::refresh`] whenever
//!   the model's weights change.
//! - **The propagation rules by hand** (Guided Backprop, Deconvolution,
//!   DeepLift, LRP; see [`FastSqueezeNet::propagate`]).

use tch::{Device, Tensor};

use super::pool::{max_pool2d, max_pool2d_with_indices};
use crate::error::Result;
use crate::model::layers::{Layer, Pass};
use crate::model::network::{FastPaths, Inspect};
use crate::model::rules::{Op, Recorded, Rules};
use crate::model::squeezenet::{pools_after, Conv, Fire, SqueezeNet11, POOL};

/// A batch `[N, C, H, W]` with NHWC strides ("channels last"), the shape
/// unchanged; no copy where it already has them.
pub(crate) fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// SqueezeNet 1.1's fast paths over a model's weights.
#[derive(Debug)]
pub(crate) struct FastSqueezeNet {
    /// The model's own weights (the same tensors).
    nchw: SqueezeNet11,
    /// Copies of them in NHWC layout, on the CPU, for batches of copies.
    nhwc: Option<SqueezeNet11>,
}

impl FastSqueezeNet {
    /// The fast paths over `net`'s weights (NHWC copies on the CPU).
    pub(crate) fn new(net: &SqueezeNet11) -> Self {
        let on_cpu = net.conv1.w.device() == Device::Cpu;
        FastSqueezeNet {
            nchw: net.map_weights(Tensor::shallow_clone),
            nhwc: on_cpu.then(|| tch::no_grad(|| net.map_weights(channels_last))),
        }
    }

    /// Copies the model's weights into the NHWC copies again (after a change
    /// to the model's weights).
    pub(crate) fn refresh(&self) {
        if let Some(nhwc) = &self.nhwc {
            tch::no_grad(|| {
                for (to, from) in nhwc.convs().into_iter().zip(self.nchw.convs()) {
                    to.w.shallow_clone().copy_(&from.w);
                }
            });
        }
    }

    /// Whether batches of copies run on NHWC weights.
    pub(crate) fn has_nhwc(&self) -> bool {
        self.nhwc.is_some()
    }

    /// The weights for batches of copies.
    fn for_copies(&self) -> &SqueezeNet11 {
        self.nhwc.as_ref().unwrap_or(&self.nchw)
    }

    /// The logits, in the fast order.
    pub(crate) fn logits(&self, x: &Tensor) -> Tensor {
        logits(&self.nchw, x)
    }
}

/// torchvision's `features`, `[N, 512, 13, 13]`, in the fast order.
fn features(net: &SqueezeNet11, xs: &Tensor) -> Tensor {
    let mut x = max_pool(&net.conv1.apply(xs)).relu();
    for (i, fire) in net.fires.iter().enumerate() {
        let y = expand(fire, &fire.squeeze.apply(&x).relu());
        x = if pools_after(i) { max_pool(&y) } else { y }.relu();
    }
    x
}

fn max_pool(x: &Tensor) -> Tensor {
    max_pool2d(x, 3, 2, true)
}

/// The expand convolutions' outputs from the squeeze activation `s`,
/// concatenated (before their ReLU).
fn expand(fire: &Fire, s: &Tensor) -> Tensor {
    Tensor::cat(&[fire.expand1x1.apply(s), fire.expand3x3.apply(s)], 1)
}

/// The logits, in the fast order, on `net`'s weights.
fn logits(net: &SqueezeNet11, x: &Tensor) -> Tensor {
    let c = &net.classifier;
    head(&features(net, x), &c.w, c.b.as_ref())
}

/// Classifier convolution, ReLU, global average pooling, `[N, classes]`.
fn head(features: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    features
        .conv2d(w, b, [1, 1], [0, 0], [1, 1], 1)
        .relu()
        .adaptive_avg_pool2d([1, 1])
        .flatten(1, -1)
}

/// The classifier's weight and bias for class `class` alone.
fn class_row(net: &SqueezeNet11, class: i64) -> (Tensor, Option<Tensor>) {
    let c = &net.classifier;
    (
        c.w.narrow(0, class, 1),
        c.b.as_ref().map(|b| b.narrow(0, class, 1)),
    )
}

/// One class's score `[N]`: the features, then that class's row of the
/// classifier only.
fn class_score(net: &SqueezeNet11, x: &Tensor, class: i64) -> Tensor {
    let (w, b) = class_row(net, class);
    head(&features(net, x), &w, b.as_ref()).view([-1])
}

impl FastPaths for FastSqueezeNet {
    /// The features once, then each image's class row of the classifier
    /// (bit for bit the whole classifier's numbers, a tenth faster).
    fn target_scores(&self, xs: &Tensor, targets: &[i64]) -> Tensor {
        let features = features(&self.nchw, xs);
        let scores: Vec<Tensor> = targets
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let (w, b) = class_row(&self.nchw, t);
                head(&features.narrow(0, i as i64, 1), &w, b.as_ref()).view([-1])
            })
            .collect();
        Tensor::cat(&scores, 0)
    }

    /// NHWC on the CPU, else contiguous.
    fn copies(&self, x: &Tensor) -> Tensor {
        if self.has_nhwc() {
            channels_last(x)
        } else {
            x.contiguous()
        }
    }

    fn copies_score(&self, copies: &Tensor, class: i64) -> Tensor {
        class_score(self.for_copies(), copies, class)
    }

    fn copies_logits(&self, copies: &Tensor) -> Tensor {
        logits(self.for_copies(), copies)
    }

    /// By hand: a forward pass in torchvision's order that keeps what the
    /// backward pass needs (each operation's input and output, each
    /// pooling's indices), then the backward pass layer by layer, with the
    /// rules where they replace the gradient; the classifier as each
    /// image's class row alone. Through autograd the backward pass has to
    /// stop at each operation a rule replaces (tch's `run_backward` takes
    /// no gradient for its roots, so each stretch is seeded by a product
    /// over the activations); by hand it is the passes Captum's and
    /// Zennit's hooks make. The convolutions' input gradients are libtorch's
    /// transposed convolutions, which run the same backward-data kernels as
    /// autograd's convolution backward (Guided Backprop on the lab's 25
    /// images: 0.0 from Captum and from the guided pass).
    fn propagate(&self, xs: &Tensor, targets: &[i64], rules: &dyn Rules) -> Option<Result<Tensor>> {
        Some(tch::no_grad(|| {
            propagate_by_hand(&self.nchw, xs, targets, rules)
        }))
    }
}

/// An operation's record: `conv` of `x`.
fn conv(c: &Conv, x: &Tensor, first: bool) -> Recorded {
    Recorded {
        op: Op::Conv(c.params()),
        input: x.shallow_clone(),
        output: c.apply(x),
        first,
    }
}

/// An operation's record: ReLU of `x`.
fn relu(x: &Tensor) -> Recorded {
    Recorded {
        op: Op::Relu,
        input: x.shallow_clone(),
        output: x.relu(),
        first: false,
    }
}

/// An operation's record: SqueezeNet's max-pooling of `x`.
fn pool(x: &Tensor) -> Recorded {
    let (kernel, stride, ceil_mode) = POOL;
    let (output, indices) = max_pool2d_with_indices(x, kernel, stride, ceil_mode);
    Recorded {
        op: Op::MaxPool {
            kernel,
            stride,
            ceil_mode,
            indices,
        },
        input: x.shallow_clone(),
        output,
        first: false,
    }
}

/// A Fire module's operations, and the pooling after it.
struct FireRecord {
    squeeze: Recorded,
    squeeze_relu: Recorded,
    expand1x1: Recorded,
    expand1x1_relu: Recorded,
    expand3x3: Recorded,
    expand3x3_relu: Recorded,
    pool: Option<Recorded>,
}

/// [`FastPaths::propagate`] for SqueezeNet on `net`'s weights (outside
/// autograd).
fn propagate_by_hand(
    net: &SqueezeNet11,
    xs: &Tensor,
    targets: &[i64],
    rules: &dyn Rules,
) -> Result<Tensor> {
    let conv1 = conv(&net.conv1, xs, true);
    let relu1 = relu(&conv1.output);
    let pool1 = pool(&relu1.output);
    let mut h = pool1.output.shallow_clone();
    let mut fires = Vec::with_capacity(net.fires.len());
    for (i, fire) in net.fires.iter().enumerate() {
        let squeeze = conv(&fire.squeeze, &h, false);
        let squeeze_relu = relu(&squeeze.output);
        let expand1x1 = conv(&fire.expand1x1, &squeeze_relu.output, false);
        let expand1x1_relu = relu(&expand1x1.output);
        let expand3x3 = conv(&fire.expand3x3, &squeeze_relu.output, false);
        let expand3x3_relu = relu(&expand3x3.output);
        let out = Tensor::cat(&[&expand1x1_relu.output, &expand3x3_relu.output], 1);
        let pooled = pools_after(i).then(|| pool(&out));
        h = pooled.as_ref().map_or(out, |p| p.output.shallow_clone());
        fires.push(FireRecord {
            squeeze,
            squeeze_relu,
            expand1x1,
            expand1x1_relu,
            expand3x3,
            expand3x3_relu,
            pool: pooled,
        });
    }
    // The head, each image's class row alone: its map z = w . h + b, ReLU,
    // the mean over the positions.
    let rows: Vec<Recorded> = targets
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let c = &net.classifier;
            let row = Conv {
                w: c.w.narrow(0, t, 1),
                b: c.b.as_ref().map(|b| b.narrow(0, t, 1)),
                stride: c.stride,
                padding: c.padding,
            };
            conv(&row, &h.narrow(0, i as i64, 1), false)
        })
        .collect();
    let maps = Tensor::cat(&rows.iter().map(|r| &r.output).collect::<Vec<_>>(), 0);
    let head_relu = relu(&maps);
    let mean = Recorded {
        op: Op::AvgPool,
        input: head_relu.output.shallow_clone(),
        output: head_relu.output.adaptive_avg_pool2d([1, 1]),
        first: false,
    };
    let g = rules.back_through(&mean, &mean.output.ones_like())?;
    let g = rules.back_through(&head_relu, &g)?;
    let per_image = rows
        .iter()
        .enumerate()
        .map(|(i, row)| rules.back_through(row, &g.narrow(0, i as i64, 1)))
        .collect::<Result<Vec<_>>>()?;
    let mut g = Tensor::cat(&per_image, 0);
    for f in fires.iter().rev() {
        if let Some(p) = &f.pool {
            g = rules.back_through(p, &g)?;
        }
        let c1 = f.expand1x1.output.size()[1];
        let c3 = f.expand3x3.output.size()[1];
        let g1 = rules.back_through(&f.expand1x1_relu, &g.narrow(1, 0, c1))?;
        let g1 = rules.back_through(&f.expand1x1, &g1)?;
        let g3 = rules.back_through(&f.expand3x3_relu, &g.narrow(1, c1, c3))?;
        let g3 = rules.back_through(&f.expand3x3, &g3)?;
        g = rules.back_through(&f.squeeze_relu, &(g1 + g3))?;
        g = rules.back_through(&f.squeeze, &g)?;
    }
    let g = rules.relu_then_pool(&relu1, &pool1, &g, None)?;
    rules.back_through(&conv1, &g)
}

/// torchvision's order, on the weights for copies (NHWC on the CPU) with the
/// input laid out to match: Grad-CAM's pass, about 1.8 times faster on the
/// CPU. The gradient goes back only to the captured layer, so where no
/// max-pooling lies between that layer and the output (`features.9` and
/// later) the map differs from PyTorch's layout by rounding alone; before
/// that, flat image regions may route it through another, equally valid,
/// position.
impl Inspect for FastSqueezeNet {
    fn logits_traced(&self, x: &Tensor, pass: &mut Pass) -> Tensor {
        self.for_copies().forward(&self.copies(x), pass, "")
    }

    fn layer_names(&self) -> Vec<String> {
        Inspect::layer_names(&self.nchw)
    }
}
