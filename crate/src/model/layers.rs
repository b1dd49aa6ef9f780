//! The crate's layers: networks built from them can be looked inside, as
//! Guided Backprop (Springenberg et al. 2015), Grad-CAM (Selvaraju et al.
//! 2017) and the propagation rules (DeepLift, LRP) need, where a tch module
//! is opaque.
//!
//! A [`Layer`] runs its forward pass through a [`Pass`], which sees every
//! convolution, fully connected layer, ReLU, max-pooling and global average
//! pooling ([`Pass::conv2d`], [`Pass::linear`], [`Pass::relu`],
//! [`Pass::max_pool2d`], [`Pass::global_avg_pool`]) and the output of every
//! named layer ([`Pass::layer`]). An ordinary pass ([`Pass::new`]) changes
//! nothing; an intercepting pass ([`Pass::intercepting`]; [`Pass::guided`]
//! for ReLUs) records the operations of the kinds it is given, each
//! output a new leaf of the autograd graph, so that a propagation method can
//! go back through them with its own rules
//! ([`crate::attribution::propagation`]); a capturing pass
//! ([`Pass::capture`]) makes a layer's output a leaf of the autograd graph,
//! so that the gradient with respect to it can be asked for (Grad-CAM).
//!
//! Layers: [`Sequential`] (named children, torchvision's naming), [`Conv2d`],
//! [`Linear`], [`Relu`], [`MaxPool2d`], [`GlobalAvgPool`], [`Flatten`],
//! [`Dropout`]; SqueezeNet's [`Fire`](super::Fire) module and SqueezeNet 1.1
//! itself ([`SqueezeNet11`](super::SqueezeNet11)) are layers too.
//! Wrap a network in a [`Model`](super::Model) with
//! [`Model::from_layers`](super::Model::from_layers).

use tch::nn;
use tch::Tensor;

use super::rules::{ConvParams, Op, OpKind, Recorded};
use crate::error::{Error, Result};

/// What a forward pass does at the operations it sees and at named layers
/// (see the module's documentation).
#[derive(Debug, Default)]
pub struct Pass {
    intercept: Vec<OpKind>,
    capture: Option<String>,
    captured: Option<Tensor>,
    /// The intercepted operations so far, in order.
    ops: Vec<Traced>,
}

/// An operation an intercepting pass met: its record for the rules, its
/// input as the autograd graph has it, and the leaf that stands for its
/// output.
#[derive(Debug)]
pub(crate) struct Traced {
    pub(crate) record: Recorded,
    pub(crate) input: Tensor,
    pub(crate) leaf: Tensor,
}

impl Pass {
    /// An ordinary forward pass.
    #[must_use]
    pub fn new() -> Self {
        Pass::default()
    }

    /// A pass that records the ReLUs, for Guided Backprop and
    /// Deconvolution.
    #[must_use]
    pub fn guided() -> Self {
        Pass::intercepting(&[OpKind::Relu])
    }

    /// A pass that records every operation of the given kinds (on a path
    /// from an input that records gradients), each output a new leaf of the
    /// autograd graph.
    #[must_use]
    pub fn intercepting(kinds: &[OpKind]) -> Self {
        Pass {
            intercept: kinds.to_vec(),
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

    fn intercepts(&self, kind: OpKind, x: &Tensor) -> bool {
        self.intercept.contains(&kind) && x.requires_grad()
    }

    /// Records an intercepted operation: `y` its output (computed outside
    /// autograd), returned as a new leaf.
    fn record(&mut self, op: Op, x: &Tensor, y: Tensor) -> Tensor {
        let weighted = |k: OpKind| matches!(k, OpKind::Conv | OpKind::Linear);
        let first = weighted(op.kind()) && !self.ops.iter().any(|t| weighted(t.record.op.kind()));
        let leaf = y.detach().set_requires_grad(true);
        self.ops.push(Traced {
            record: Recorded {
                op,
                input: x.detach(),
                output: y.detach(),
                first,
            },
            input: x.shallow_clone(),
            leaf: leaf.shallow_clone(),
        });
        leaf
    }

    /// ReLU of `x`.
    pub fn relu(&mut self, x: &Tensor) -> Tensor {
        if !self.intercepts(OpKind::Relu, x) {
            return x.relu();
        }
        let y = x.detach().relu();
        self.record(Op::Relu, x, y)
    }

    /// The 2-D convolution of `x` with weight `w` and bias `b` (zero
    /// padding).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        &mut self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
        groups: i64,
    ) -> Tensor {
        let params = ConvParams {
            w: w.shallow_clone(),
            b: b.map(Tensor::shallow_clone),
            stride,
            padding,
            dilation,
            groups,
        };
        if !self.intercepts(OpKind::Conv, x) {
            return params.apply_with(x, w, b);
        }
        let y = tch::no_grad(|| {
            params.apply_with(&x.detach(), &w.detach(), b.map(Tensor::detach).as_ref())
        });
        self.record(Op::Conv(params), x, y)
    }

    /// The fully connected layer `x w^T + b`.
    pub fn linear(&mut self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        if !self.intercepts(OpKind::Linear, x) {
            return x.linear(w, b);
        }
        let y = tch::no_grad(|| {
            x.detach()
                .linear(&w.detach(), b.map(Tensor::detach).as_ref())
        });
        let op = Op::Linear {
            w: w.detach(),
            b: b.map(Tensor::detach),
        };
        self.record(op, x, y)
    }

    /// Max-pooling with square `kernel` windows, `stride`, no padding.
    pub fn max_pool2d(&mut self, x: &Tensor, kernel: i64, stride: i64, ceil_mode: bool) -> Tensor {
        let (k, st) = ([kernel, kernel], [stride, stride]);
        if !self.intercepts(OpKind::MaxPool, x) {
            return x.max_pool2d(k, st, [0, 0], [1, 1], ceil_mode);
        }
        let (y, indices) = tch::no_grad(|| {
            x.detach()
                .max_pool2d_with_indices(k, st, [0, 0], [1, 1], ceil_mode)
        });
        let op = Op::MaxPool {
            kernel,
            stride,
            ceil_mode,
            indices: indices.flatten(2, 3),
        };
        self.record(op, x, y)
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: &Tensor) -> Tensor {
        if !self.intercepts(OpKind::AvgPool, x) {
            return x.adaptive_avg_pool2d([1, 1]);
        }
        let y = tch::no_grad(|| x.detach().adaptive_avg_pool2d([1, 1]));
        self.record(Op::AvgPool, x, y)
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

    /// The intercepted operations, in the order the pass met them.
    pub(crate) fn into_ops(self) -> Vec<Traced> {
        self.ops
    }
}

/// A layer of a network the crate can look inside.
pub trait Layer: std::fmt::Debug + Send {
    /// The layer's output for `x`, going through `pass` at every ReLU and,
    /// for containers, after every named child; `name` is this layer's own
    /// name (`features.3`), from which its children's are made.
    fn forward(&self, x: &Tensor, pass: &mut Pass, name: &str) -> Tensor;

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
/// `bias` under its path), with its configuration.
#[derive(Debug)]
pub struct Conv2d {
    conv: nn::Conv2D,
    config: nn::ConvConfig,
}

impl Conv2d {
    /// A convolution from `c_in` to `c_out` channels with a square kernel.
    #[must_use]
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, config: nn::ConvConfig) -> Self {
        Conv2d {
            conv: nn::conv2d(p, c_in, c_out, kernel, config),
            config,
        }
    }

    /// tch's convolution (its weight `ws` and bias `bs`).
    #[must_use]
    pub fn conv(&self) -> &nn::Conv2D {
        &self.conv
    }
}

impl Layer for Conv2d {
    /// tch's `Conv2D::forward` (padding modes other than zeros pad first),
    /// through the pass.
    fn forward(&self, x: &Tensor, pass: &mut Pass, _name: &str) -> Tensor {
        let c = &self.config;
        let (x, padding) = match c.padding_mode {
            nn::PaddingMode::Zeros => (x.shallow_clone(), c.padding),
            mode => (mode.pad(x, &[c.padding; 4]), 0),
        };
        pass.conv2d(
            &x,
            &self.conv.ws,
            self.conv.bs.as_ref(),
            [c.stride; 2],
            [padding; 2],
            [c.dilation; 2],
            c.groups,
        )
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
    fn forward(&self, x: &Tensor, pass: &mut Pass, _name: &str) -> Tensor {
        pass.linear(x, &self.0.ws, self.0.bs.as_ref())
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
    fn forward(&self, x: &Tensor, pass: &mut Pass, _name: &str) -> Tensor {
        pass.max_pool2d(x, self.kernel, self.stride, self.ceil_mode)
    }
}

/// Global average pooling to `[N, C, 1, 1]` (`AdaptiveAvgPool2d((1, 1))`).
#[derive(Debug, Clone, Copy)]
pub struct GlobalAvgPool;

impl Layer for GlobalAvgPool {
    fn forward(&self, x: &Tensor, pass: &mut Pass, _name: &str) -> Tensor {
        pass.global_avg_pool(x)
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
