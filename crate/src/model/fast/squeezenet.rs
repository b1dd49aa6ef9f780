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
//! - **Guided Backprop by hand** (see [`FastSqueezeNet::guided_gradient`]).

use tch::{Device, Tensor};

use super::pool::{max_pool2d, max_pool2d_backward, max_pool2d_with_indices};
use crate::model::layers::{Layer, Pass};
use crate::model::network::{FastPaths, Inspect, ReluRule};
use crate::model::squeezenet::{pools_after, Fire, SqueezeNet11};

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
    /// backward pass needs (each ReLU's input, each pooling's indices), then
    /// the backward pass layer by layer with `rule` at every ReLU. Through
    /// autograd the backward pass has to stop at each ReLU (tch's
    /// `run_backward` takes no gradient for its roots, so each stretch is
    /// seeded by a product over the activations); by hand it is the passes
    /// Captum's hooks make. The convolutions' input gradients are libtorch's
    /// transposed convolutions, which run the same backward-data kernels as
    /// autograd's convolution backward (on the lab's 25 images: 0.0 from
    /// Captum and from the guided pass; the unit test allows rounding).
    fn guided_gradient(&self, xs: &Tensor, targets: &[i64], rule: ReluRule) -> Option<Tensor> {
        let net = &self.nchw;
        Some(tch::no_grad(|| {
            let pool = |x: &Tensor| max_pool2d_with_indices(x, 3, 2, true);
            let a = net.conv1.apply(xs);
            let (mut h, first_pool) = pool(&a.relu());
            // Per Fire module: its input's size, its squeeze and expand
            // pre-activations, and the indices of the pooling after it.
            let mut kept = Vec::with_capacity(net.fires.len());
            for (i, fire) in net.fires.iter().enumerate() {
                let input = h.size();
                let squeeze = fire.squeeze.apply(&h);
                let expand = expand(fire, &squeeze.relu());
                let out = expand.relu();
                let pooled = if pools_after(i) {
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
                    let (w, b) = class_row(net, t);
                    let hi = h.narrow(0, i as i64, 1);
                    let z = hi.conv2d(&w, b.as_ref(), [1, 1], [0, 0], [1, 1], 1);
                    let seed = z.ones_like() / (z.size()[2] * z.size()[3]) as f64;
                    conv_input_grad(&rule(&seed, &z), &w, 1, 0, &hi.size())
                })
                .collect();
            let mut g = Tensor::cat(&grads, 0);
            for (fire, (input, squeeze, expand, pooled)) in net.fires.iter().zip(kept).rev() {
                if let Some(indices) = pooled {
                    g = max_pool2d_backward(&g, &indices, &expand.size());
                }
                let g_expand = rule(&g, &expand);
                let c1 = fire.expand1x1.w.size()[0];
                let c3 = g_expand.size()[1] - c1;
                let s = squeeze.size();
                g = conv_input_grad(&g_expand.narrow(1, 0, c1), &fire.expand1x1.w, 1, 0, &s)
                    + conv_input_grad(&g_expand.narrow(1, c1, c3), &fire.expand3x3.w, 1, 1, &s);
                g = conv_input_grad(&rule(&g, &squeeze), &fire.squeeze.w, 1, 0, &input);
            }
            g = max_pool2d_backward(&g, &first_pool, &a.size());
            conv_input_grad(&rule(&g, &a), &net.conv1.w, 2, 0, &xs.size())
        }))
    }
}

/// The gradient at the input (of size `input`) of a convolution with
/// `weight`, `stride` and `padding`, from the gradient `grad` at its output:
/// the transposed convolution, with the rows and columns a strided
/// convolution left out at the end added back.
fn conv_input_grad(
    grad: &Tensor,
    weight: &Tensor,
    stride: i64,
    padding: i64,
    input: &[i64],
) -> Tensor {
    let out = grad.size();
    let extra = |i: usize| input[i] - ((out[i] - 1) * stride - 2 * padding + weight.size()[i]);
    grad.conv_transpose2d(
        weight,
        None::<&Tensor>,
        [stride, stride],
        [padding, padding],
        [extra(2), extra(3)],
        1,
        [1, 1],
    )
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
