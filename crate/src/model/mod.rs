//! The networks the lab explains: SqueezeNet 1.1 (Iandola et al.,
//! "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB
//! model size", arXiv:1602.07360) with torchvision's pretrained weights,
//! frozen and in evaluation mode, as the lab uses it; [`Model`], which wraps
//! it or any other network; [`Network`], what the attribution methods ask of
//! a network, with the opt-in traits [`Inspect`] and [`FastPaths`]; the
//! crate's [`layers`]; the weights' loader (`weights.rs`), the untrained
//! network's initialisation for model randomisation (`init.rs`), and class
//! scores for any network (`scores.rs`).
//!
//! SqueezeNet is written once as torchvision writes it (`squeezenet.rs`),
//! and once more, faster and with the same numbers, in `fast/`; [`Numerics`]
//! chooses between them.

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::error::Result;

mod fast;
mod init;
pub mod layers;
mod network;
pub mod rules;
mod scores;
mod squeezenet;
mod weights;

use fast::FastSqueezeNet;
use init::{default_init, squeezenet_init};
pub use init::{Init, SavedWeights};
pub use layers::{Layer, Pass};
#[cfg(feature = "causal-metrics")]
pub(crate) use network::copies_logits;
pub(crate) use network::{copies, copies_gradient, copies_score, target_gradient};
pub use network::{FastPaths, Inspect, Network};
pub use rules::{OpKind, Rules};
pub(crate) use scores::check_network_classes;
pub use scores::{class_scores, gather_scores, top1};
pub use squeezenet::{Fire, SqueezeNet11};
pub use weights::{load_weights, squeezenet1_1};

/// Which numbers a [`Model`] computes: PyTorch's way, or the fast paths'.
///
/// | method | `PyTorch` | `Fast` (the default; SqueezeNet from [`squeezenet1_1`]) |
/// | --- | --- | --- |
/// | class scores, vanilla gradient, Input x Gradient | torchvision's order, each image's scores gathered from the logits | the fast order (`model/fast/`), each image's class row of the classifier alone: the same numbers, bit for bit |
/// | the noise tunnel, Integrated Gradients, Occlusion, deletion and insertion (batches of copies of one image) | as above, contiguous (NCHW) | NHWC weights and batches on the CPU, one class alone: about 1.8 times faster, and equal to PyTorch's to rounding (see below) |
/// | Guided Backprop | torchvision's order through autograd, one stretch between ReLUs at a time | by hand, Captum's numbers (0.0 apart on the lab's images) |
/// | Grad-CAM | torchvision's order, NCHW | torchvision's order on NHWC weights on the CPU |
///
/// NHWC convolutions sum in another order, so their values differ from
/// PyTorch's in the last bit. Where an image has flat regions, PyTorch's
/// layout computes exactly equal values side by side and max-pooling routes
/// the gradient to the first; in NHWC the gradient may go to another,
/// equally valid, position: Integrated Gradients then agrees with Captum to
/// about 1e-3 (relative L2) rather than 1e-7, and Grad-CAM at a layer below a
/// pooling likewise. `PyTorch` is the setting for agreeing with PyTorch and
/// Captum to float rounding; `Fast` for everything else. A network without
/// fast paths ([`Model::new`], [`Model::from_layers`]) computes the same
/// under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Numerics {
    /// PyTorch's numbers: torchvision's order, through autograd, NCHW.
    #[cfg_attr(feature = "cli", value(name = "pytorch"))]
    PyTorch,
    /// The fast paths (`model/fast/`): the same numbers where the table says
    /// so, faster.
    #[default]
    Fast,
}

/// A network the model runs: what it offers, and printable.
trait Net: Network + std::fmt::Debug + Send {}
impl<T: Network + std::fmt::Debug + Send> Net for T {}

/// A tch module inside a [`Model`]: opaque.
#[derive(Debug)]
struct Module(Box<dyn ModuleT>);

impl Network for Module {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.0.forward_t(x, false)
    }
    fn num_classes(&self) -> Option<i64> {
        None
    }
}

/// A network of the crate's layers inside a [`Model`]: it can be looked
/// inside.
#[derive(Debug)]
struct Layers(Box<dyn Layer>);

impl Network for Layers {
    fn logits(&self, x: &Tensor) -> Tensor {
        self.0.forward(x, &mut Pass::new(), "")
    }
    fn num_classes(&self) -> Option<i64> {
        None
    }
    fn inspect(&self) -> Option<&dyn Inspect> {
        Some(self)
    }
}

impl Inspect for Layers {
    fn logits_traced(&self, x: &Tensor, pass: &mut Pass) -> Tensor {
        self.0.forward(x, pass, "")
    }
    fn layer_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.0.layer_names("", &mut names);
        names
    }
}

/// A frozen pretrained network: its variables and its forward function.
///
/// `Model` is a concrete type, so a notebook can keep it in a variable between
/// cells. It implements [`Network`], with what its network offers: a
/// [`squeezenet1_1`] can be looked inside ([`Inspect`]) and has fast paths
/// ([`FastPaths`]), switched by [`Numerics`]. It also implements
/// [`ModuleT`], so it goes wherever a tch module does (its logits, as
/// [`Numerics`] says).
#[derive(Debug)]
pub struct Model {
    vs: nn::VarStore,
    net: Box<dyn Net>,
    /// The fast paths, where the network has them (SqueezeNet).
    fast: Option<FastSqueezeNet>,
    numerics: Numerics,
    name: String,
    /// How each variable is initialised before training.
    init: fn(&str) -> Init,
}

impl ModuleT for Model {
    /// The class scores, as [`Numerics`] says (`train` is ignored: the model
    /// is frozen in evaluation mode).
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.logits(xs)
    }
}

impl Network for Model {
    fn logits(&self, x: &Tensor) -> Tensor {
        match self.fast_paths() {
            Some(fast) => fast.logits(x),
            None => self.net.logits(x),
        }
    }

    fn num_classes(&self) -> Option<i64> {
        self.net.num_classes()
    }

    fn inspect(&self) -> Option<&dyn Inspect> {
        match self.fast_paths() {
            Some(fast) => Some(fast),
            None => self.net.inspect(),
        }
    }

    fn fast(&self) -> Option<&dyn FastPaths> {
        self.fast_paths().map(|f| f as &dyn FastPaths)
    }
}

impl Model {
    /// Wraps any tch network built on `vs`; the variables are frozen (no
    /// gradient is computed for them, as the lab's `requires_grad = False`).
    /// The methods that look inside a network (Guided Backprop, Grad-CAM)
    /// cannot see into a tch module: build it from the crate's [`layers`]
    /// and use [`Model::from_layers`] for them.
    #[must_use]
    pub fn new(vs: nn::VarStore, net: Box<dyn ModuleT>, name: impl Into<String>) -> Self {
        Model::wrap(vs, Box::new(Module(net)), name.into())
    }

    /// Wraps a network built from the crate's [`layers`] on `vs` (frozen);
    /// every method can look inside it.
    #[must_use]
    pub fn from_layers(vs: nn::VarStore, net: Box<dyn Layer>, name: impl Into<String>) -> Self {
        Model::wrap(vs, Box::new(Layers(net)), name.into())
    }

    fn wrap(mut vs: nn::VarStore, net: Box<dyn Net>, name: String) -> Self {
        vs.freeze();
        Model {
            vs,
            net,
            fast: None,
            numerics: Numerics::default(),
            name,
            init: default_init,
        }
    }

    /// SqueezeNet 1.1 on `vs` (its weights in place), with its fast paths.
    pub(crate) fn squeezenet(vs: nn::VarStore, net: SqueezeNet11) -> Self {
        let fast = FastSqueezeNet::new(&net);
        let mut model = Model::wrap(vs, Box::new(net), "SqueezeNet 1.1".into());
        model.init = squeezenet_init;
        model.fast = Some(fast);
        model
    }

    /// The model computing as `numerics` says (see [`Numerics`]).
    #[must_use]
    pub fn with_numerics(mut self, numerics: Numerics) -> Self {
        self.numerics = numerics;
        self
    }

    /// Sets how the model computes (see [`Numerics`]).
    pub fn set_numerics(&mut self, numerics: Numerics) {
        self.numerics = numerics;
    }

    /// How the model computes (see [`Numerics`]).
    #[must_use]
    pub fn numerics(&self) -> Numerics {
        self.numerics
    }

    /// The fast paths, where the model has them and [`Numerics::Fast`] is set.
    fn fast_paths(&self) -> Option<&FastSqueezeNet> {
        match self.numerics {
            Numerics::Fast => self.fast.as_ref(),
            Numerics::PyTorch => None,
        }
    }

    /// The names of the layers a pass can capture, in the order they run
    /// (empty for an opaque module).
    #[must_use]
    pub fn layer_names(&self) -> Vec<String> {
        self.net
            .inspect()
            .map(Inspect::layer_names)
            .unwrap_or_default()
    }

    /// The device the weights live on.
    #[must_use]
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The model's name (for titles and logs).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The variable store (frozen).
    #[must_use]
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Class scores (logits) `[N, classes]` for a batch `[N, 3, H, W]`, in
    /// evaluation mode and without recording gradients (the lab's
    /// `scores = model(X_tensor)`).
    ///
    /// # Errors
    /// See [`class_scores`].
    pub fn scores(&self, x: &Tensor) -> Result<Tensor> {
        class_scores(self, x)
    }

    /// Runs one forward and backward pass on a small batch, on distinct
    /// images and on copies, so that libtorch's one-time set-up (thread
    /// pool, kernel selection, allocator) is paid here rather than by the
    /// first saliency map.
    ///
    /// # Errors
    /// If libtorch fails.
    pub fn warm_up(&self, batch: i64) -> Result<()> {
        let x = Tensor::zeros([batch, 3, 224, 224], (Kind::Float, self.device()));
        let targets = vec![0; batch as usize];
        let _grad = target_gradient(self, &x, &targets)?;
        if self.fast_paths().is_some_and(FastSqueezeNet::has_nhwc) {
            let _grad = copies_gradient(self, &x, 0)?;
        }
        Ok(())
    }
}
