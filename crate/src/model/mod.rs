//! The networks the lab explains: SqueezeNet 1.1 (Iandola et al.,
//! "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB
//! model size", arXiv:1602.07360) with torchvision's pretrained weights,
//! frozen and in evaluation mode, as the lab uses it; [`Model`], which wraps
//! it or any other network; [`Network`], what the attribution methods ask of
//! a network, with the opt-in traits [`Inspect`] and [`FastPaths`]; the
//! crate's [`layers`]; and class scores for any network.
//!
//! SqueezeNet is written once as torchvision writes it (`squeezenet.rs`),
//! and once more, faster and with the same numbers, in `fast/`; [`Numerics`]
//! chooses between them.

use std::path::{Path, PathBuf};

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::support::{catch_libtorch, check_batch, check_targets, index_tensor};

mod fast;
pub mod layers;
mod network;
pub mod rules;
mod squeezenet;

use fast::FastSqueezeNet;
pub use layers::{Layer, Pass};
#[cfg(feature = "causal-metrics")]
pub(crate) use network::copies_logits;
pub(crate) use network::{copies, copies_gradient, copies_score, target_gradient};
pub use network::{FastPaths, Inspect, Network};
pub use rules::{OpKind, Rules};
pub use squeezenet::{Fire, SqueezeNet11};

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

/// How a variable is initialised before training: what model randomisation
/// (Adebayo et al. 2018) puts back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Kaiming (He) uniform for ReLU networks: `U(-b, b)`, `b = sqrt(6 /
    /// fan_in)` (PyTorch's `kaiming_uniform_` with its defaults).
    KaimingUniform,
    /// `N(0, std^2)`.
    Normal(f64),
    /// Zeros (biases).
    Zeros,
}

/// The default initialisation: Kaiming uniform weights, zero biases.
fn default_init(name: &str) -> Init {
    if name.ends_with("bias") {
        Init::Zeros
    } else {
        Init::KaimingUniform
    }
}

/// torchvision's SqueezeNet initialisation: Kaiming uniform convolutions,
/// the final one `N(0, 0.01^2)`, zero biases.
fn squeezenet_init(name: &str) -> Init {
    match name {
        "classifier.1.weight" => Init::Normal(0.01),
        n => default_init(n),
    }
}

/// Weights saved by [`Model::reinitialise`], for [`Model::restore`].
#[derive(Debug)]
pub struct SavedWeights(Vec<(String, Tensor)>);

/// The layer a variable belongs to: its name without the last part, and
/// without the parts below a block of two (`features.3.squeeze.weight` is in
/// `features.3`, a Fire module).
fn layer_of(variable: &str) -> String {
    let parts: Vec<&str> = variable.split('.').collect();
    let keep = (parts.len().saturating_sub(1)).clamp(1, 2);
    parts[..keep].join(".")
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

    /// The layers that hold weights, from the input to the output: the units
    /// of model randomisation. SqueezeNet 1.1: `features.0`, `features.3` ...
    /// `features.12` (a Fire module each), `classifier.1`.
    #[must_use]
    pub fn weight_layers(&self) -> Vec<String> {
        let order = self.layer_names();
        let mut layers: Vec<String> = self.vs.variables().keys().map(|n| layer_of(n)).collect();
        layers.sort();
        layers.dedup();
        let key = |l: &String| {
            let pos = order.iter().position(|n| n == l).unwrap_or(usize::MAX);
            // Else numbers in names compare as numbers (features.10 after features.9).
            let natural: Vec<(String, u64)> = l
                .split('.')
                .map(|p| {
                    p.parse::<u64>()
                        .map_or((p.to_string(), 0), |v| (String::new(), v))
                })
                .collect();
            (pos, natural)
        };
        layers.sort_by_key(key);
        layers
    }

    /// Re-initialises the weights of `layers` (names from
    /// [`Model::weight_layers`]) as the untrained network's (torchvision's
    /// initialisation for SqueezeNet; Kaiming uniform weights and zero biases
    /// otherwise), from `seed` (each variable a stream of its own), in the
    /// model and its fast paths' NHWC copies; returns the weights they held.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a layer the model does not have.
    pub fn reinitialise(&self, layers: &[String], seed: u64) -> Result<SavedWeights> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal, Uniform};
        let known = self.weight_layers();
        if let Some(bad) = layers.iter().find(|l| !known.contains(l)) {
            return Err(Error::parameter(
                "Model::reinitialise",
                "layer",
                bad,
                format!("the model's layers with weights are {}", known.join(", ")),
            ));
        }
        let mut vars: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(n, _)| layers.contains(&layer_of(n)))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let (mut saved, mut fresh) = (Vec::new(), Vec::new());
        for (name, var) in vars {
            let size = var.size();
            let count = var.numel();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(
                name.bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
            );
            let values: Vec<f32> = match (self.init)(&name) {
                Init::Zeros => vec![0.0; count],
                Init::Normal(std) => {
                    let d = Normal::new(0.0, std as f32)
                        .map_err(|e| Error::parameter("Init", "std", std, e.to_string()))?;
                    (0..count).map(|_| d.sample(&mut rng)).collect()
                }
                Init::KaimingUniform => {
                    let fan_in: i64 = size.iter().skip(1).product::<i64>().max(1);
                    let bound = (6.0 / fan_in as f64).sqrt() as f32;
                    let d = Uniform::new(-bound, bound)
                        .map_err(|e| Error::parameter("Init", "bound", bound, e.to_string()))?;
                    (0..count).map(|_| d.sample(&mut rng)).collect()
                }
            };
            let values = Tensor::from_slice(&values)
                .view(size.as_slice())
                .to_device(var.device());
            saved.push((name.clone(), var.copy()));
            fresh.push((name, values));
        }
        self.set_variables(&fresh)?;
        Ok(SavedWeights(saved))
    }

    /// Puts back the weights [`Model::reinitialise`] saved.
    ///
    /// # Errors
    /// [`Error::Torch`] if libtorch fails.
    pub fn restore(&self, saved: SavedWeights) -> Result<()> {
        self.set_variables(&saved.0)
    }

    /// Copies each `(name, values)` into the variable `name`, then the
    /// weights into the fast paths' copies of them, once (also where a copy
    /// failed, so that they never disagree).
    fn set_variables(&self, values: &[(String, Tensor)]) -> Result<()> {
        let vars = self.vs.variables();
        let copied = tch::no_grad(|| -> Result<()> {
            for (name, values) in values {
                if let Some(var) = vars.get(name) {
                    var.shallow_clone().f_copy_(values)?;
                }
            }
            Ok(())
        });
        if let Some(fast) = &self.fast {
            fast.refresh();
        }
        copied
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

/// Loads SqueezeNet 1.1 with torchvision's pretrained weights from a
/// safetensors file with torchvision's variable names
/// (`features.0.weight` ... `classifier.1.bias`), frozen, on `device`, and
/// runs one small forward and backward pass so the first real call is not
/// slowed by libtorch's set-up. The network is the crate's [`SqueezeNet11`]
/// (every layer visible), with its fast paths on ([`Numerics::Fast`]: the
/// same numbers, or equal to rounding, faster; see [`Numerics`]).
///
/// # Errors
/// [`Error::NotFound`] if the file does not exist, [`Error::Format`] if it is
/// not valid safetensors, [`Error::Weights`] naming the first tensor that is
/// missing, mis-shaped or unexpected.
pub fn squeezenet1_1(weights: impl AsRef<Path>, device: Device) -> Result<Model> {
    let vs = nn::VarStore::new(device);
    let net = SqueezeNet11::new(&vs.root(), 1000);
    load_weights(&vs, weights.as_ref())?;
    let model = Model::squeezenet(vs, net);
    // libtorch sets kernels up on first use: pay it here (~0.1 s), not in
    // the first saliency map. A GPU also sets up per batch shape and grows
    // its memory pool: warm it at the lab's batch of 25 too.
    model.warm_up(2)?;
    if device != Device::Cpu {
        model.warm_up(25)?;
    }
    Ok(model)
}

/// Copies the tensors of a safetensors file into `vs`, checking that every
/// variable is present with its shape and that the file holds nothing else.
///
/// # Errors
/// As [`squeezenet1_1`].
pub fn load_weights(vs: &nn::VarStore, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(Error::NotFound {
            what: "weights file",
            path: path.to_path_buf(),
            hint: "run scripts/setup, or pass the path of a safetensors file".into(),
        });
    }
    let file_tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let mut file: std::collections::BTreeMap<String, Tensor> = file_tensors.into_iter().collect();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let weights_err = |what: String| Error::Weights {
        path: PathBuf::from(path),
        what,
    };
    for (name, var) in &vars {
        let src = file.remove(name).ok_or_else(|| {
            weights_err(format!("missing tensor `{name}` (shape {:?})", var.size()))
        })?;
        if src.size() != var.size() {
            return Err(weights_err(format!(
                "tensor `{name}` has shape {:?}, the model expects {:?}",
                src.size(),
                var.size()
            )));
        }
        if !src.is_floating_point() {
            return Err(weights_err(format!(
                "tensor `{name}` has dtype {:?}, not float",
                src.kind()
            )));
        }
        tch::no_grad(|| var.shallow_clone().f_copy_(&src.to_kind(var.kind())))?;
    }
    if let Some(extra) = file.keys().next() {
        return Err(weights_err(format!(
            "unexpected tensor `{extra}` ({} tensor(s) the model does not have)",
            file.len()
        )));
    }
    Ok(())
}

/// Class scores `[N, classes]` of `model` for a batch `[N, C, H, W]`, in
/// evaluation mode and without recording gradients.
///
/// # Errors
/// [`Error::Shape`] if `x` is not a non-empty 4-D float tensor,
/// [`Error::Parameter`] if it holds NaN, [`Error::Torch`] if the model fails
/// on it (e.g. an image too small for its pooling layers).
pub fn class_scores<N: Network + ?Sized>(net: &N, x: &Tensor) -> Result<Tensor> {
    check_batch("class_scores", x)?;
    let _guard = tch::no_grad_guard();
    catch_libtorch(x, || net.logits(x))
}

/// The lab's `scores.gather(1, y.view(-1, 1)).squeeze()`: the score of each
/// row's target class. `scores` is `[N, classes]`; returns `[N]`.
///
/// # Errors
/// [`Error::Shape`] if `scores` is not 2-D or `targets` has not `N` entries,
/// [`Error::Parameter`] if a target lies outside `0..classes`.
pub fn gather_scores(scores: &Tensor, targets: &[i64]) -> Result<Tensor> {
    let index = targets_index(scores, targets, "gather_scores")?;
    Ok(scores.f_gather(1, &index, false)?.squeeze_dim(1))
}

/// The index of the highest score per row, `[N]`.
///
/// # Errors
/// [`Error::Shape`] if `scores` is not 2-D.
pub fn top1(scores: &Tensor) -> Result<Vec<i64>> {
    if scores.dim() != 2 {
        return Err(Error::shape(
            "top1",
            "scores [N, classes]",
            format!("{:?}", scores.size()),
        ));
    }
    Ok(Vec::<i64>::try_from(
        &scores.argmax(1, false).to_device(Device::Cpu),
    )?)
}

/// Checks `targets` against `scores` `[N, classes]` and returns them as an
/// `[N, 1]` index tensor on the scores' device.
fn targets_index(scores: &Tensor, targets: &[i64], op: &'static str) -> Result<Tensor> {
    check_targets(scores, targets, op)?;
    Ok(index_tensor(targets, scores.device()))
}
