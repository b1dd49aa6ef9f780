//! Backward rules: what the propagation methods (Guided Backprop,
//! Deconvolution, DeepLift, LRP) put in place of the gradient at some of a
//! network's operations.
//!
//! A forward pass made to intercept some kinds of operation ([`OpKind`];
//! [`Pass::intercepting`](super::Pass::intercepting)) records each one it
//! meets ([`Recorded`]: the operation, its input and its output); a network's
//! fast path does the same by hand ([`FastPaths::propagate`](super::FastPaths::propagate)).
//! The backward pass then asks the [`Rules`] for each recorded operation's
//! input relevance from its output relevance, and takes the plain gradient
//! ([`Recorded::gradient`]) through everything else.

use tch::Tensor;

use crate::error::Result;

/// The kinds of operation a rule can replace the gradient of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A 2-D convolution.
    Conv,
    /// A fully connected layer.
    Linear,
    /// ReLU.
    Relu,
    /// Max-pooling.
    MaxPool,
    /// Global average pooling (to `1 x 1`).
    AvgPool,
}

/// A 2-D convolution's parameters: weight `[C_out, C_in / groups, kH, kW]`,
/// bias, stride, padding, dilation, groups (zero padding).
#[derive(Debug)]
pub struct ConvParams {
    /// The weight.
    pub w: Tensor,
    /// The bias, if any.
    pub b: Option<Tensor>,
    /// Stride (rows, columns).
    pub stride: [i64; 2],
    /// Zero padding (rows, columns).
    pub padding: [i64; 2],
    /// Dilation (rows, columns).
    pub dilation: [i64; 2],
    /// Groups.
    pub groups: i64,
}

impl ConvParams {
    /// The same parameters, the tensors shared.
    #[must_use]
    pub fn shallow(&self) -> ConvParams {
        ConvParams {
            w: self.w.shallow_clone(),
            b: self.b.as_ref().map(Tensor::shallow_clone),
            ..*self
        }
    }

    /// The convolution of `x` with weight `w` and bias `b` in place of its
    /// own (the rules' modified parameters), this geometry.
    pub fn apply_with(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        x.conv2d(w, b, self.stride, self.padding, self.dilation, self.groups)
    }

    /// The gradient at an input of size `input` of the convolution with
    /// weight `w` (its own or a rule's) from `grad` at its output: the
    /// transposed convolution, with the rows and columns a strided
    /// convolution left out at the end added back (libtorch's
    /// backward-data kernels, as autograd runs them).
    pub fn input_gradient_with(&self, grad: &Tensor, w: &Tensor, input: &[i64]) -> Tensor {
        let out = grad.size();
        let extra = |i: usize| {
            input[i]
                - ((out[i] - 1) * self.stride[i - 2] - 2 * self.padding[i - 2]
                    + self.dilation[i - 2] * (w.size()[i] - 1)
                    + 1)
        };
        grad.conv_transpose2d(
            w,
            None::<&Tensor>,
            self.stride,
            self.padding,
            [extra(2), extra(3)],
            self.groups,
            self.dilation,
        )
    }
}

/// An operation as a rule sees it.
#[derive(Debug)]
pub enum Op {
    /// A 2-D convolution.
    Conv(ConvParams),
    /// A fully connected layer: weight `[out, in]`, bias.
    Linear {
        /// The weight.
        w: Tensor,
        /// The bias, if any.
        b: Option<Tensor>,
    },
    /// ReLU.
    Relu,
    /// Max-pooling with square windows, no padding; `indices` are the
    /// maxima's positions in each input plane `[N, C, Ho * Wo]`.
    MaxPool {
        /// Window side.
        kernel: i64,
        /// Stride.
        stride: i64,
        /// Whether partial windows at the edge count.
        ceil_mode: bool,
        /// Where each output's maximum is in its input plane.
        indices: Tensor,
    },
    /// Global average pooling to `[N, C, 1, 1]`.
    AvgPool,
}

impl Op {
    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Conv(_) => OpKind::Conv,
            Op::Linear { .. } => OpKind::Linear,
            Op::Relu => OpKind::Relu,
            Op::MaxPool { .. } => OpKind::MaxPool,
            Op::AvgPool => OpKind::AvgPool,
        }
    }
}

/// An operation met by a forward pass, with its input and output (values,
/// outside autograd).
#[derive(Debug)]
pub struct Recorded {
    /// The operation.
    pub op: Op,
    /// Its input.
    pub input: Tensor,
    /// Its output.
    pub output: Tensor,
    /// Whether it is the network's first convolution or fully connected
    /// layer (the one next to the input, where some LRP composites use
    /// another rule).
    pub first: bool,
}

impl Recorded {
    /// The plain gradient at the input from `grad` at the output.
    pub fn gradient(&self, grad: &Tensor) -> Tensor {
        match &self.op {
            Op::Conv(c) => c.input_gradient_with(grad, &c.w, &self.input.size()),
            Op::Linear { w, .. } => grad.matmul(w),
            Op::Relu => self.input.threshold_backward(grad, 0.0),
            Op::MaxPool { indices, .. } => {
                super::fast::pool::max_pool2d_backward(grad, indices, &self.input.size())
            }
            Op::AvgPool => {
                let s = self.input.size();
                (grad / (s[2] * s[3]) as f64).expand(&s, false)
            }
        }
    }
}

/// A set of backward rules: which operations they replace the gradient of,
/// and how.
pub trait Rules {
    /// Whether operations of `kind` take this set's rule (the others, the
    /// plain gradient).
    fn replaces(&self, kind: OpKind) -> bool;

    /// The relevance (or modified gradient) at `op`'s input from `grad` at
    /// its output, for an operation of a kind it [`replaces`](Rules::replaces).
    ///
    /// # Errors
    /// [`crate::Error::Torch`] if libtorch fails.
    fn backward(&self, op: &Recorded, grad: &Tensor) -> Result<Tensor>;

    /// The relevance at a ReLU's input when a max-pooling takes the ReLU's
    /// output directly, from `grad` at the pooling's output and `others`,
    /// what the ReLU's other uses gave back (if any). Default: the
    /// pooling's rule, the others added, then the ReLU's rule. Captum's
    /// DeepLift differs (see [`DeepLift`](crate::attribution::DeepLift)).
    ///
    /// # Errors
    /// As [`Rules::backward`].
    fn relu_then_pool(
        &self,
        relu: &Recorded,
        pool: &Recorded,
        grad: &Tensor,
        others: Option<&Tensor>,
    ) -> Result<Tensor> {
        let g = self.back_through(pool, grad)?;
        let g = match others {
            Some(o) => g + o,
            None => g,
        };
        self.back_through(relu, &g)
    }

    /// The rule where it replaces the gradient, else the gradient.
    ///
    /// # Errors
    /// As [`Rules::backward`].
    fn back_through(&self, op: &Recorded, grad: &Tensor) -> Result<Tensor> {
        if self.replaces(op.op.kind()) {
            self.backward(op, grad)
        } else {
            Ok(op.gradient(grad))
        }
    }
}

/// A rule at ReLUs alone (Guided Backprop's, Deconvolution's): from the
/// gradient at a ReLU's output and its input, the gradient at its input.
pub struct ReluRules<'a>(pub &'a dyn Fn(&Tensor, &Tensor) -> Tensor);

impl Rules for ReluRules<'_> {
    fn replaces(&self, kind: OpKind) -> bool {
        kind == OpKind::Relu
    }

    fn backward(&self, op: &Recorded, grad: &Tensor) -> Result<Tensor> {
        Ok((self.0)(grad, &op.input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Each op's plain gradient equals autograd's.
    #[test]
    fn plain_gradients_are_autograds() {
        tch::manual_seed(3);
        let opts = (Kind::Double, Device::Cpu);
        let x = Tensor::randn([2, 4, 9, 8], opts);
        let conv = ConvParams {
            w: Tensor::randn([6, 2, 3, 2], opts),
            b: Some(Tensor::randn([6], opts)),
            stride: [2, 3],
            padding: [1, 0],
            dilation: [1, 2],
            groups: 2,
        };
        let check = |op: Op, f: &dyn Fn(&Tensor) -> Tensor| {
            let input = x.detach().set_requires_grad(true);
            let y = f(&input);
            let g = y.randn_like();
            let want =
                Tensor::run_backward(&[(&y * &g).sum(Kind::Double)], &[&input], false, false)
                    .remove(0);
            let rec = Recorded {
                op,
                input: x.shallow_clone(),
                output: y.detach(),
                first: false,
            };
            let got = rec.gradient(&g);
            let err = (&got - &want).abs().max().double_value(&[]);
            assert!(err < 1e-12, "{:?}: {err}", rec.op.kind());
        };
        check(Op::Conv(conv.shallow()), &|x| {
            conv.apply_with(x, &conv.w, conv.b.as_ref())
        });
        check(Op::Relu, &|x| x.relu());
        let (_, indices) = x.max_pool2d_with_indices([3, 3], [2, 2], [0, 0], [1, 1], true);
        check(
            Op::MaxPool {
                kernel: 3,
                stride: 2,
                ceil_mode: true,
                indices: indices.flatten(2, 3),
            },
            &|x| x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], true),
        );
        check(Op::AvgPool, &|x| x.adaptive_avg_pool2d([1, 1]));
        let flat = Tensor::randn([2, 5], opts);
        let (w, b) = (Tensor::randn([3, 5], opts), Tensor::randn([3], opts));
        let input = flat.detach().set_requires_grad(true);
        let y = input.linear(&w, Some(&b));
        let g = y.randn_like();
        let want =
            Tensor::run_backward(&[(&y * &g).sum(Kind::Double)], &[&input], false, false).remove(0);
        let rec = Recorded {
            op: Op::Linear { w, b: Some(b) },
            input: flat,
            output: y.detach(),
            first: true,
        };
        assert!((rec.gradient(&g) - want).abs().max().double_value(&[]) < 1e-12);
    }
}
