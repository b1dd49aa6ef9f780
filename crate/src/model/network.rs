//! What the attribution methods ask of a network: [`Network`].
//!
//! Every method needs class scores. Some go faster when the network offers
//! more, and some need to see inside it; each of those is a method of the
//! trait with a default, which a network opts into explicitly:
//!
//! | method of [`Network`] | default | [`Model`](super::Model) from [`squeezenet1_1`](super::squeezenet1_1) |
//! | --- | --- | --- |
//! | [`logits`](Network::logits) | - (required) | torchvision's SqueezeNet 1.1, bit for bit |
//! | [`copy_layout`](Network::copy_layout) | [`Layout::Contiguous`] | NHWC on the CPU |
//! | [`class_score`](Network::class_score) | the logits, one column | that class's row of the classifier only, on NHWC weights for NHWC input |
//! | [`target_scores`](Network::target_scores) | the logits, gathered | each image's class row only |
//! | [`logits_traced`](Network::logits_traced) | `None`: opaque | every ReLU and named layer seen by a [`Pass`] |
//! | [`guided_gradient`](Network::guided_gradient) | `None`: a guided [`Pass`] | Guided Backprop by hand |
//!
//! `Network` is implemented for [`Model`](super::Model), for a
//! `dyn ModuleT` (any tch module behind a reference: the plain path), and for
//! tch's `FuncT`, `Func`, `Sequential` and `SequentialT`, and for a
//! reference to any of them. Another type of yours that implements `ModuleT`
//! goes in as `&m as &dyn ModuleT` (to a [`Method`](crate::attribution::Method),
//! which takes `&dyn Network`, as `&module` where `module: &dyn ModuleT`), or
//! inside a `Model` ([`Model::new`](super::Model::new)).

use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use super::layers::Pass;
use crate::error::Result;
use crate::support::{catch_libtorch, input_gradient};

/// The gradient of each image's target score with respect to the image,
/// through the whole network in the default layout (the lab's
/// `compute_saliency_maps`); targets already checked.
pub(crate) fn target_gradient(net: &dyn Network, x: &Tensor, targets: &[i64]) -> Result<Tensor> {
    input_gradient(x, |input| {
        Ok(catch_libtorch(input, || net.target_scores(input, targets))?.sum(Kind::Float))
    })
}

/// The gradient of class `target`'s score with respect to each of a batch of
/// copies of one image, laid out as `layout` and scored one class alone
/// ([`Network::class_score`]); the class already checked.
pub(crate) fn copies_gradient(
    net: &dyn Network,
    copies: &Tensor,
    target: i64,
    layout: Layout,
) -> Result<Tensor> {
    input_gradient(&layout.apply(copies), |input| {
        Ok(catch_libtorch(input, || net.class_score(input, target, layout))?.sum(Kind::Float))
    })
}

/// A classifier as the attribution methods see it. Inputs are preprocessed
/// batches `[N, C, H, W]`; calls run in evaluation mode; a libtorch failure
/// inside (a wrong input size, say) panics as tch does, and the crate's
/// functions turn that into an [`Error`](crate::Error).
pub trait Network {
    /// Class scores (logits) `[N, classes]` of a batch in the default
    /// (contiguous, NCHW) layout.
    fn logits(&self, x: &Tensor) -> Tensor;

    /// The memory layout in which the network runs fastest on batches of
    /// copies of one image (SmoothGrad's noisy samples, Occlusion's windows):
    /// methods that may, lay such batches out this way before
    /// [`Network::class_score`].
    fn copy_layout(&self) -> Layout {
        Layout::Contiguous
    }

    /// The score of class `class` for every image of `x` `[N]`, where `x` is
    /// laid out as `layout` says (a network may keep weights in each layout).
    /// The default takes one column of the logits; a network can compute
    /// that class alone.
    fn class_score(&self, x: &Tensor, class: i64, _layout: Layout) -> Tensor {
        self.logits(x).select(1, class)
    }

    /// Class scores `[N, classes]` of a batch laid out as `layout` (a
    /// network may keep weights in each layout). Default: [`Network::logits`].
    fn logits_in(&self, x: &Tensor, _layout: Layout) -> Tensor {
        self.logits(x)
    }

    /// The number of classes, where the network knows it without a forward
    /// pass (so that targets can be checked first). Default: `None`.
    fn num_classes(&self) -> Option<i64> {
        None
    }

    /// The score of each image's target class `[N]` for a batch in the
    /// default layout: the lab's `scores.gather(1, y)`. The default gathers
    /// from the logits; a network can compute each image's class alone. The
    /// targets are already checked.
    fn target_scores(&self, x: &Tensor, targets: &[i64]) -> Tensor {
        let index = Tensor::from_slice(targets)
            .to_device(x.device())
            .view([-1, 1]);
        self.logits(x).gather(1, &index, false).view([-1])
    }

    /// The logits, computed so that `pass` sees every ReLU and the output of
    /// every named layer (Guided Backprop changes the ReLUs' backward pass,
    /// Grad-CAM captures a layer's output), for `x` laid out as `layout`.
    /// `None` where the network is opaque (a tch module): those methods then
    /// say what they need.
    fn logits_traced(&self, _x: &Tensor, _pass: &mut Pass, _layout: Layout) -> Option<Tensor> {
        None
    }

    /// The names of the layers whose output [`Network::logits_traced`] can
    /// capture, in the order they run (empty where the network is opaque).
    fn layer_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Guided Backprop's gradient of each image's target score with respect
    /// to `x` (`targets` checked), where the network computes it by hand,
    /// faster than a guided pass through [`Network::logits_traced`].
    /// Default: `None`.
    fn guided_gradient(&self, _x: &Tensor, _targets: &[i64]) -> Option<Tensor> {
        None
    }
}

/// The memory layout of a batch `[N, C, H, W]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Contiguous in `[N, C, H, W]` order (PyTorch's default).
    #[default]
    Contiguous,
    /// NHWC strides ("channels last"), the shape unchanged: libtorch's CPU
    /// convolutions run about 1.4 times faster on it (`crate/benches/LOG.md`).
    ChannelsLast,
}

impl Layout {
    /// `x` (4-D) in this layout, copied only if it is not already.
    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Layout::Contiguous => x.contiguous(),
            Layout::ChannelsLast if is_channels_last(x) => x.shallow_clone(),
            Layout::ChannelsLast => x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]),
        }
    }
}

/// Whether a 4-D tensor has NHWC strides (and more than one channel).
pub(crate) fn is_channels_last(x: &Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4 && size[1] > 1 && stride[1] == 1 && stride[3] == size[1]
}

/// A reference to a network is the network (so `&model` and `model` both
/// work where `model` is already a reference).
impl<N: Network + ?Sized> Network for &N {
    fn logits(&self, x: &Tensor) -> Tensor {
        (**self).logits(x)
    }
    fn copy_layout(&self) -> Layout {
        (**self).copy_layout()
    }
    fn class_score(&self, x: &Tensor, class: i64, layout: Layout) -> Tensor {
        (**self).class_score(x, class, layout)
    }
    fn logits_in(&self, x: &Tensor, layout: Layout) -> Tensor {
        (**self).logits_in(x, layout)
    }
    fn num_classes(&self) -> Option<i64> {
        (**self).num_classes()
    }
    fn target_scores(&self, x: &Tensor, targets: &[i64]) -> Tensor {
        (**self).target_scores(x, targets)
    }
    fn logits_traced(&self, x: &Tensor, pass: &mut Pass, layout: Layout) -> Option<Tensor> {
        (**self).logits_traced(x, pass, layout)
    }
    fn layer_names(&self) -> Vec<String> {
        (**self).layer_names()
    }
    fn guided_gradient(&self, x: &Tensor, targets: &[i64]) -> Option<Tensor> {
        (**self).guided_gradient(x, targets)
    }
}

/// The plain path: any tch module, run with `train = false`.
impl Network for dyn ModuleT + '_ {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }
}

/// The plain path for tch's closures with a train flag (`nn::func_t`).
impl Network for nn::FuncT<'_> {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }
}

/// The plain path for tch's closures (`nn::func`).
impl Network for nn::Func<'_> {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward(x)
    }
}

/// The plain path for tch's `nn::seq_t()` networks (tch's `vision` models).
impl Network for nn::SequentialT {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }
}

/// The plain path for tch's `nn::seq()` networks.
impl Network for nn::Sequential {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.forward(x)
    }
}
