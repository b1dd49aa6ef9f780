//! What the attribution methods ask of a network: [`Network`], and two
//! traits a network may opt into, [`Inspect`] (looking inside) and
//! [`FastPaths`] (speed).
//!
//! Every method needs class scores, and checks its targets against the
//! number of classes where the network knows it: that is [`Network`]. A
//! method that looks inside a network (Guided Backprop's ReLUs, Grad-CAM's
//! layer) asks [`Network::inspect`] for an [`Inspect`], and says what it
//! needs where there is none. A method that can go faster asks
//! [`Network::fast`] for [`FastPaths`], and takes the plain path (the logits,
//! through autograd) where there are none: the same maps, bit for bit where
//! the network's fast paths promise it.
//!
//! | method | asks for | without it |
//! | --- | --- | --- |
//! | vanilla gradient, Input x Gradient | [`FastPaths::target_scores`] | the logits, gathered |
//! | the noise tunnel's samples, Integrated Gradients, Occlusion | [`FastPaths::copies`], [`FastPaths::copies_score`] | the logits, one column |
//! | deletion and insertion | [`FastPaths::copies`], [`FastPaths::copies_logits`] | the logits |
//! | Guided Backprop, Deconvolution, DeepLift, LRP | [`FastPaths::propagate`], else [`Inspect`] | [`Error::Unsupported`](crate::Error::Unsupported) |
//! | Grad-CAM, Guided Grad-CAM | [`Inspect`] | [`Error::Unsupported`](crate::Error::Unsupported) |
//!
//! `Network` is implemented for [`Model`](super::Model) (which offers what
//! its network and its [`Numerics`](super::Numerics) allow), for a
//! `dyn ModuleT` (any tch module behind a reference: the plain path), for
//! tch's `FuncT`, `Func`, `Sequential` and `SequentialT`, for the crate's
//! [`SqueezeNet11`](super::SqueezeNet11) and [`Sequential`](super::layers::Sequential)
//! (which can be looked inside), and for a reference to any of them.
//!
//! # A new network's fast path
//!
//! Implement [`FastPaths`] for it (each method's contract is its
//! documentation: the numbers it must give) and return `Some(self)` from
//! [`Network::fast`]; [`Model`](super::Model) shows the way for SqueezeNet
//! (`model/fast/`), switched on and off by
//! [`Model::with_numerics`](super::Model::with_numerics).

use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use super::layers::Pass;
use super::rules::Rules;
use crate::error::Result;
use crate::support::{catch_libtorch, index_tensor, input_gradient};

/// A classifier as the attribution methods see it. Inputs are preprocessed
/// batches `[N, C, H, W]`; calls run in evaluation mode; a libtorch failure
/// inside (a wrong input size, say) panics as tch does, and the crate's
/// functions turn that into an [`Error`](crate::Error).
pub trait Network {
    /// Class scores (logits) `[N, classes]`.
    fn logits(&self, x: &Tensor) -> Tensor;

    /// The number of classes, where the network knows it without a forward
    /// pass (so that targets can be checked first); `None` for an opaque
    /// module, whose targets are then checked against its logits.
    fn num_classes(&self) -> Option<i64>;

    /// A view inside the network, where it offers one. Default: `None`
    /// (opaque).
    fn inspect(&self) -> Option<&dyn Inspect> {
        None
    }

    /// The network's fast paths, where it offers them. Default: `None` (the
    /// plain path).
    fn fast(&self) -> Option<&dyn FastPaths> {
        None
    }
}

/// Looking inside a network: what Guided Backprop and Grad-CAM need.
pub trait Inspect {
    /// The logits of `x`, computed so that `pass` sees every ReLU
    /// ([`Pass::relu`]) and the output of every named layer
    /// ([`Pass::layer`]).
    fn logits_traced(&self, x: &Tensor, pass: &mut Pass) -> Tensor;

    /// The names of the layers whose output a pass can capture, in the order
    /// they run.
    fn layer_names(&self) -> Vec<String>;
}

/// A network's faster routes to the numbers of its [`Network::logits`].
///
/// To opt in, implement this trait and return `Some(self)` from
/// [`Network::fast`]. Targets and classes are checked before any of these is
/// called; gradients flow through what they return (except
/// [`FastPaths::propagate`], which computes one).
pub trait FastPaths {
    /// The score of each image's target class `[N]` for a batch of distinct
    /// images: `logits(x).gather(1, targets)`, bit for bit, computing each
    /// image's class alone where the network can.
    fn target_scores(&self, x: &Tensor, targets: &[i64]) -> Tensor;

    /// A batch of copies of one image (noisy samples, a path, occluded
    /// windows) `[k, C, H, W]` in the memory layout this path runs fastest
    /// on; no copy where it already is.
    fn copies(&self, x: &Tensor) -> Tensor;

    /// The score of class `class` for every image of `copies` (from
    /// [`FastPaths::copies`]), `[k]`.
    fn copies_score(&self, copies: &Tensor, class: i64) -> Tensor;

    /// The logits `[k, classes]` of `copies` (from [`FastPaths::copies`]).
    fn copies_logits(&self, copies: &Tensor) -> Tensor;

    /// The relevance at `x` of the sum of each image's target score: the
    /// backward pass with `rules` in place of the gradient at the operations
    /// it replaces ([`Rules`]), computed by hand, in the order and with the
    /// operations of the network's own forward pass (the record each rule
    /// gets is the one an intercepting [`Pass`] makes); `None` where the
    /// network does not offer it. Default: `None`.
    fn propagate(
        &self,
        _x: &Tensor,
        _targets: &[i64],
        _rules: &dyn Rules,
    ) -> Option<Result<Tensor>> {
        None
    }
}

/// Each image's target score `[N]`: the network's fast path, else the logits
/// gathered (targets checked).
pub(crate) fn target_scores(net: &dyn Network, x: &Tensor, targets: &[i64]) -> Tensor {
    match net.fast() {
        Some(fast) => fast.target_scores(x, targets),
        None => {
            let index = index_tensor(targets, x.device());
            net.logits(x).gather(1, &index, false).view([-1])
        }
    }
}

/// A batch of copies of one image as the network's fast path wants it (else
/// contiguous).
pub(crate) fn copies(net: &dyn Network, x: &Tensor) -> Tensor {
    match net.fast() {
        Some(fast) => fast.copies(x),
        None => x.contiguous(),
    }
}

/// Class `class`'s score `[k]` for copies made by [`copies`].
pub(crate) fn copies_score(net: &dyn Network, copies: &Tensor, class: i64) -> Tensor {
    match net.fast() {
        Some(fast) => fast.copies_score(copies, class),
        None => net.logits(copies).select(1, class),
    }
}

/// The logits of copies made by [`copies`].
#[cfg(feature = "causal-metrics")]
pub(crate) fn copies_logits(net: &dyn Network, copies: &Tensor) -> Tensor {
    match net.fast() {
        Some(fast) => fast.copies_logits(copies),
        None => net.logits(copies),
    }
}

/// The gradient of each image's target score with respect to the image (the
/// lab's `compute_saliency_maps`); targets already checked.
pub(crate) fn target_gradient(net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Tensor> {
    input_gradient(x, |input| {
        Ok(catch_libtorch(input, || target_scores(net, input, targets))?.sum(Kind::Float))
    })
}

/// The gradient of class `target`'s score with respect to each of a batch of
/// copies of one image; the class already checked.
pub(crate) fn copies_gradient(net: &dyn Network, x: &Tensor, target: i64) -> Result<Tensor> {
    input_gradient(&copies(net, x), |input| {
        Ok(catch_libtorch(input, || copies_score(net, input, target))?.sum(Kind::Float))
    })
}

/// A reference to a network is the network (so `&model` and `model` both
/// work where `model` is already a reference).
impl<N: Network + ?Sized> Network for &N {
    fn logits(&self, x: &Tensor) -> Tensor {
        (**self).logits(x)
    }
    fn num_classes(&self) -> Option<i64> {
        (**self).num_classes()
    }
    fn inspect(&self) -> Option<&dyn Inspect> {
        (**self).inspect()
    }
    fn fast(&self) -> Option<&dyn FastPaths> {
        (**self).fast()
    }
}

/// The plain path: any tch module, run with `train = false`.
impl Network for dyn ModuleT + '_ {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }
    fn num_classes(&self) -> Option<i64> {
        None
    }
}

/// The plain path for tch's closures with a train flag (`nn::func_t`).
impl Network for nn::FuncT<'_> {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }
    fn num_classes(&self) -> Option<i64> {
        None
    }
}

/// The plain path for tch's closures (`nn::func`).
impl Network for nn::Func<'_> {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward(x)
    }
    fn num_classes(&self) -> Option<i64> {
        None
    }
}

/// The plain path for tch's `nn::seq_t()` networks (tch's `vision` models).
impl Network for nn::SequentialT {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }
    fn num_classes(&self) -> Option<i64> {
        None
    }
}

/// The plain path for tch's `nn::seq()` networks.
impl Network for nn::Sequential {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward(x)
    }
    fn num_classes(&self) -> Option<i64> {
        None
    }
}
