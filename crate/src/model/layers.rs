//! The crate's layers: networks built from them can be looked inside, as
//! Guided Backprop (Springenberg et al. 2015) and Grad-CAM (Selvaraju et al.
//! 2017) need, where a tch module is opaque.
//!
//! A [`Layer`] runs its forward pass through a [`Pass`], which sees every
//! ReLU ([`Pass::relu`]) and the output of every named layer
//! ([`Pass::layer`]). An ordinary pass ([`Pass::new`]) changes nothing; a
//! guided pass ([`Pass::guided`]) records the ReLUs so that
//! [`guided_gradient`] can backpropagate through them with Guided Backprop's
//! rule; a capturing pass ([`Pass::capture`]) makes a layer's output a leaf of
//! the autograd graph, so that the gradient with respect to it can be asked
//! for (Grad-CAM).
//!
//! Layers: [`Sequential`] (named children, torchvision's naming), [`Conv2d`],
//! [`Linear`], [`Relu`], [`MaxPool2d`], [`GlobalAvgPool`], [`Flatten`],
//! [`Dropout`], [`Fire`] (SqueezeNet's module), and SqueezeNet 1.1 itself.
//! Wrap a network in a [`Model`](super::Model) with
//! [`Model::from_layers`](super::Model::from_layers).

use tch::nn;
use tch::Tensor;

use crate::error::{Error, Result};

/// What a forward pass does at ReLUs and named layers (see the module's
/// documentation).
#[derive(Debug, Default)]
pub struct Pass {
    guided: bool,
    capture: Option<String>,
    captured: Option<Tensor>,
    /// The guided ReLUs seen so far: (pre-activation, the leaf standing for
    /// the activation).
    relus: Vec<(Tensor, Tensor)>,
}

impl Pass {
    /// An ordinary forward pass.
    #[must_use]
    pub fn new() -> Self {
        Pass::default()
    }

    /// A pass that records the ReLUs for [`guided_gradient`].
    #[must_use]
    pub fn guided() -> Self {
        Pass {
            guided: true,
            ..Pass::default()
        }
    }

    /// Makes the output of the layer named `layer` (e.g. `features.12`) a
    /// leaf that records gradients; see [`Pass::captured`].
    #[must_use]
    pub fn capture(mut self, layer: impl Into<String>) -> Self {
        self.capture = Some(layer.into());
        self
    }

    /// Whether the pass changes nothing (a network may then take a faster
    /// route to the same numbers).
    #[must_use]
    pub fn is_plain(&self) -> bool {
        !self.guided && self.capture.is_none()
    }

    /// ReLU of `x`; in a guided pass, the activation is returned as a new leaf
    /// and `x` kept, so that the backward pass can be taken one ReLU at a
    /// time.
    pub fn relu(&mut self, x: &Tensor) -> Tensor {
        let y = x.relu();
        if !self.guided || !x.requires_grad() {
            return y;
        }
        let leaf = y.detach().set_requires_grad(true);
        self.relus.push((x.shallow_clone(), leaf.shallow_clone()));
        leaf
    }

    /// Called with the output `y` of the layer named `name`: returns `y`,
    /// or, if that layer is the one to capture, a leaf with `y`'s values
    /// that records gradients.
    pub fn layer(&mut self, name: &str, y: Tensor) -> Tensor {
        if self.capture.as_deref() != Some(name) {
            return y;
        }
        let leaf = y.detach().set_requires_grad(true);
        self.captured = Some(leaf.shallow_clone());
        leaf
    }

    /// The captured layer's output (a leaf of the autograd graph), once the
    /// pass has run through it.
    #[must_use]
    pub fn captured(&self) -> Option<&Tensor> {
        self.captured.as_ref()
    }
}

/// The gradient of `score`, a scalar computed from `input` (a tensor that
/// records gradients) by a pass made with [`Pass::guided`], with respect to
/// `input`, by Guided Backprop's rule: at every ReLU the gradient is passed
/// back only where both the ReLU's input and the incoming gradient are
/// positive, `relu(g) * (x > 0)` (Captum's `GuidedBackprop` rule).
///
/// The backward pass runs one stretch between ReLUs at a time, from the last
/// ReLU to the first, so each rectified gradient is complete (every later
/// use of that ReLU's output has given its part) before it goes on.
///
/// # Errors
/// [`Error::Torch`] if libtorch fails.
pub fn guided_gradient(pass: Pass, score: &Tensor, input: &Tensor) -> Result<Tensor> {
    let relus = pass.relus;
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
        // relu(g) where the ReLU's input was positive; the backward pass of
        // the scalar `pre . rectified` hands `rectified` to `pre` (libtorch
        // takes no gradient for a root, and a product as the root would cost
        // two more passes over the activations: the product and its seed).
        let rectified = pre.detach().threshold_backward(&g.relu(), 0.0);
        let root = pre.reshape([-1]).dot(&rectified.reshape([-1]));
        let below = Tensor::f_run_backward(&[root], &leaves[..=i], false, false)?;
        add(&mut grads, below);
    }
    Ok(grads[0].take().unwrap_or_else(|| input.zeros_like()))
}

/// A layer of a network the crate can look inside.
pub trait Layer: std::fmt::Debug + Send {
    /// The layer's output for `x`, going through `pass` at every ReLU and,
    /// for containers, after every named child; `name` is this layer's own
    /// name (`features.3`), from which its children's are made.
    fn forward(&self, x: &Tensor, pass: &mut Pass, name: &str) -> Tensor;

    /// The score of one class alone `[N]`, where the layer can compute it
    /// faster than the whole output (a classifier's head). Default: `None`.
    fn class_score(&self, _x: &Tensor, _class: i64) -> Option<Tensor> {
        None
    }

    /// The number of classes of a classifier, where the layer knows it.
    fn num_classes(&self) -> Option<i64> {
        None
    }

    /// The score of each image's own class `[N]` (`targets` checked), where
    /// the layer can compute it faster than the whole output. Default:
    /// `None`.
    fn target_scores(&self, _x: &Tensor, _targets: &[i64]) -> Option<Tensor> {
        None
    }

    /// Guided Backprop's gradient of each image's target score with respect
    /// to `x` (`targets` checked), where the layer computes it by hand,
    /// faster than a guided [`Pass`] through autograd. Default: `None`.
    fn guided_gradient(&self, _x: &Tensor, _targets: &[i64]) -> Option<Tensor> {
        None
    }

    /// Adds the names of this layer's children that a pass can capture.
    fn layer_names(&self, _name: &str, _out: &mut Vec<String>) {}
}

fn child(name: &str, child: &str) -> String {
    if name.is_empty() {
        child.to_string()
    } else {
        format!("{name}.{child}")
    }
}

/// Layers run one after the other, each named (torchvision's `nn.Sequential`:
/// `"0"`, `"1"`, ... or names of your choice).
#[derive(Debug, Default)]
pub struct Sequential {
    children: Vec<(String, Box<dyn Layer>)>,
}

impl Sequential {
    /// An empty sequence.
    #[must_use]
    pub fn new() -> Self {
        Sequential::default()
    }

    /// Appends `layer` under `name`.
    #[must_use]
    pub fn add(mut self, name: impl Into<String>, layer: impl Layer + 'static) -> Self {
        self.children.push((name.into(), Box::new(layer)));
        self
    }

    /// Appends `layer`, named by its position (`"0"`, `"1"`, ...).
    #[must_use]
    pub fn push(self, layer: impl Layer + 'static) -> Self {
        let name = self.children.len().to_string();
        self.add(name, layer)
    }
}

impl Layer for Sequential {
    fn forward(&self, x: &Tensor, pass: &mut Pass, name: &str) -> Tensor {
        let mut y = x.shallow_clone();
        for (child_name, layer) in &self.children {
            let full = child(name, child_name);
            y = layer.forward(&y, pass, &full);
            y = pass.layer(&full, y);
        }
        y
    }

    fn layer_names(&self, name: &str, out: &mut Vec<String>) {
        for (child_name, layer) in &self.children {
            let full = child(name, child_name);
            layer.layer_names(&full, out);
            out.push(full);
        }
    }
}

/// A 2-D convolution (tch's `nn::Conv2D`, its variables named `weight` and
/// `bias` under its path).
#[derive(Debug)]
pub struct Conv2d(pub nn::Conv2D);

impl Conv2d {
    /// A convolution from `c_in` to `c_out` channels with a square kernel.
    #[must_use]
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, config: nn::ConvConfig) -> Self {
        Conv2d(nn::conv2d(p, c_in, c_out, kernel, config))
    }
}

impl Layer for Conv2d {
    fn forward(&self, x: &Tensor, _pass: &mut Pass, _name: &str) -> Tensor {
        x.apply(&self.0)
    }
}

/// A fully connected layer (tch's `nn::Linear`).
#[derive(Debug)]
pub struct Linear(pub nn::Linear);

impl Linear {
    /// A linear map from `c_in` to `c_out` features.
    #[must_use]
    pub fn new(p: nn::Path, c_in: i64, c_out: i64) -> Self {
        Linear(nn::linear(p, c_in, c_out, Default::default()))
    }
}

impl Layer for Linear {
    fn forward(&self, x: &Tensor, _pass: &mut Pass, _name: &str) -> Tensor {
        x.apply(&self.0)
    }
}

/// ReLU, seen by the pass.
#[derive(Debug, Clone, Copy)]
pub struct Relu;

impl Layer for Relu {
    fn forward(&self, x: &Tensor, pass: &mut Pass, _name: &str) -> Tensor {
        pass.relu(x)
    }
}

/// Max-pooling with a square window.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
    /// Whether a partial window at the edge makes an output (`ceil_mode`).
    pub ceil_mode: bool,
}

impl Layer for MaxPool2d {
    fn forward(&self, x: &Tensor, _pass: &mut Pass, _name: &str) -> Tensor {
        super::pool::max_pool2d(x, self.kernel, self.stride, self.ceil_mode)
    }
}

/// Global average pooling to `[N, C, 1, 1]` (`AdaptiveAvgPool2d((1, 1))`).
#[derive(Debug, Clone, Copy)]
pub struct GlobalAvgPool;

impl Layer for GlobalAvgPool {
    fn forward(&self, x: &Tensor, _pass: &mut Pass, _name: &str) -> Tensor {
        x.adaptive_avg_pool2d([1, 1])
    }
}

/// Flattens every axis but the first.
#[derive(Debug, Clone, Copy)]
pub struct Flatten;

impl Layer for Flatten {
    fn forward(&self, x: &Tensor, _pass: &mut Pass, _name: &str) -> Tensor {
        x.flatten(1, -1)
    }
}

/// Dropout: the identity, as every pass runs in evaluation mode.
#[derive(Debug, Clone, Copy)]
pub struct Dropout;

impl Layer for Dropout {
    fn forward(&self, x: &Tensor, _pass: &mut Pass, _name: &str) -> Tensor {
        x.shallow_clone()
    }
}

/// SqueezeNet's Fire module: a 1x1 "squeeze" convolution with ReLU, then 1x1
/// and 3x3 "expand" convolutions side by side, each with ReLU, concatenated
/// (torchvision's variable names: `squeeze`, `expand1x1`, `expand3x3`).
#[derive(Debug)]
pub struct Fire {
    squeeze: nn::Conv2D,
    expand1x1: nn::Conv2D,
    expand3x3: nn::Conv2D,
}

impl Fire {
    /// A Fire module from `c_in` channels, squeezing to `c_squeeze`, expanding
    /// to `c_exp1 + c_exp3`.
    #[must_use]
    pub fn new(p: nn::Path, c_in: i64, c_squeeze: i64, c_exp1: i64, c_exp3: i64) -> Self {
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

    /// The module's output before its expand ReLUs: torchvision applies ReLU
    /// to each expand branch, then concatenates; `relu(cat(a, b))` is the
    /// same tensor, with the same gradient (Guided Backprop's rule included:
    /// it is elementwise), from one ReLU over a contiguous tensor instead of
    /// two over channel slices (strided in NHWC, where ReLU's backward pass
    /// was slow on them).
    pub(crate) fn pre_relu(&self, x: &Tensor, pass: &mut Pass) -> Tensor {
        let s = pass.relu(&self.squeeze(x));
        self.expand(&s)
    }

    /// The squeeze convolution's output (before its ReLU).
    pub(crate) fn squeeze(&self, x: &Tensor) -> Tensor {
        x.apply(&self.squeeze)
    }

    /// The expand convolutions' outputs from the squeeze activation `s`,
    /// concatenated (before their ReLU).
    pub(crate) fn expand(&self, s: &Tensor) -> Tensor {
        Tensor::cat(&[s.apply(&self.expand1x1), s.apply(&self.expand3x3)], 1)
    }

    /// The gradient at the squeeze activation (of size `s`) from the gradient
    /// `g` at the expand outputs.
    pub(crate) fn expand_input_grad(&self, g: &Tensor, s: &[i64]) -> Tensor {
        let c1 = self.expand1x1.ws.size()[0];
        let c3 = g.size()[1] - c1;
        conv_input_grad(&g.narrow(1, 0, c1), &self.expand1x1.ws, 1, 0, s)
            + conv_input_grad(&g.narrow(1, c1, c3), &self.expand3x3.ws, 1, 1, s)
    }

    /// The gradient at the module's input (of size `x`) from the gradient `g`
    /// at the squeeze convolution's output.
    pub(crate) fn squeeze_input_grad(&self, g: &Tensor, x: &[i64]) -> Tensor {
        conv_input_grad(g, &self.squeeze.ws, 1, 0, x)
    }
}

/// Guided Backprop's rule at a ReLU whose input was `pre`: the incoming
/// gradient's positive part where `pre` was positive.
pub(crate) fn guided_relu(grad: &Tensor, pre: &Tensor) -> Tensor {
    pre.threshold_backward(&grad.relu(), 0.0)
}

/// The gradient at the input (of size `input`) of a convolution with
/// `weight`, `stride` and `padding`, from the gradient `grad` at its output:
/// the transposed convolution, with the rows and columns a strided
/// convolution left out at the end added back.
pub(crate) fn conv_input_grad(
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

impl Layer for Fire {
    fn forward(&self, x: &Tensor, pass: &mut Pass, _name: &str) -> Tensor {
        let y = self.pre_relu(x, pass);
        pass.relu(&y)
    }
}

/// Checks that `layer` is one of `net`'s capturable layers.
pub(crate) fn check_layer(op: &'static str, layer: &str, names: &[String]) -> Result<()> {
    if names.iter().any(|n| n == layer) {
        return Ok(());
    }
    Err(Error::parameter(
        op,
        "layer",
        layer,
        if names.is_empty() {
            "this network is opaque: no layer can be captured".to_string()
        } else {
            format!("the network's layers are {}", names.join(", "))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

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

    #[test]
    fn a_capturing_pass_makes_the_layer_a_leaf() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = Sequential::new()
            .push(Linear::new(vs.root() / "0", 2, 3))
            .push(Relu)
            .push(Linear::new(vs.root() / "2", 3, 1));
        let mut names = vec![];
        net.layer_names("", &mut names);
        assert_eq!(names, ["0", "1", "2"]);
        let mut pass = Pass::new().capture("1");
        let y = net.forward(
            &Tensor::ones([4, 2], (Kind::Float, Device::Cpu)),
            &mut pass,
            "",
        );
        let a = pass.captured().unwrap();
        assert_eq!(a.size(), [4, 3]);
        let g = Tensor::f_run_backward(&[y.sum(Kind::Float)], &[a], false, false).unwrap();
        assert_eq!(g[0].size(), [4, 3]);
        assert!(check_layer("t", "7", &names)
            .unwrap_err()
            .to_string()
            .contains("0, 1, 2"));
    }
}
