//! SqueezeNet 1.1 (Iandola et al., "SqueezeNet: AlexNet-level accuracy with
//! 50x fewer parameters and <0.5MB model size", arXiv:1602.07360) with
//! torchvision's pretrained weights, frozen and in evaluation mode, as the lab
//! uses it; and class scores for any model.

use std::path::{Path, PathBuf};

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

mod squeezenet;
use squeezenet::SqueezeNet11;

/// A frozen pretrained network: its variables and its forward function.
///
/// `Model` is a concrete type, so a notebook can keep it in a variable between
/// cells; it implements [`ModuleT`], so it goes wherever a tch module does.
#[derive(Debug)]
pub struct Model {
    vs: nn::VarStore,
    net: Box<dyn ModuleT>,
    name: String,
    /// The same network with its convolution weights in NHWC layout, for
    /// inputs in that layout (see [`Model::forward_t`]), and its variables.
    channels_last: Option<(nn::VarStore, Twin)>,
}

/// The NHWC twin: any network, or SqueezeNet 1.1 split so that one class's
/// score can be computed alone.
#[derive(Debug)]
enum Twin {
    Any(Box<dyn ModuleT>),
    SqueezeNet(Box<SqueezeNet11>),
}

impl Twin {
    fn module(&self) -> &dyn ModuleT {
        match self {
            Twin::Any(net) => net.as_ref(),
            Twin::SqueezeNet(net) => net.as_ref(),
        }
    }
}

impl ModuleT for Model {
    /// Runs the network. An input in NHWC ("channels last") layout, as
    /// SmoothGrad passes its noisy batches, runs on a twin whose weights are
    /// in that layout too, where the model has one: libtorch's CPU
    /// convolutions are then about 1.4 times faster (`crate/benches/LOG.md`).
    /// Inputs in the default layout, as the vanilla gradient passes them, run
    /// on the default weights and give PyTorch's numbers bit for bit.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match &self.channels_last {
            Some((_, twin)) if is_channels_last(xs) => twin.module().forward_t(xs, train),
            _ => self.net.forward_t(xs, train),
        }
    }
}

/// `model` as a [`Model`], where that is its type (so that generic
/// attribution functions can take a `Model`'s faster paths).
pub(crate) fn as_model<M: ModuleT + ?Sized + 'static>(model: &M) -> Option<&Model> {
    if std::any::TypeId::of::<M>() == std::any::TypeId::of::<Model>() {
        // SAFETY: `M` is `Model` (same type id), so `model` points to a `Model`.
        Some(unsafe { &*(model as *const M).cast::<Model>() })
    } else {
        None
    }
}

/// Whether a 4-D tensor has NHWC strides (and more than one channel).
pub(crate) fn is_channels_last(x: &Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4 && size[1] > 1 && stride[1] == 1 && stride[3] == size[1]
}

/// The same values in NHWC strides ("channels last"), shape unchanged.
pub(crate) fn to_channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

impl Model {
    /// Wraps any tch network built on `vs`; the variables are frozen (no
    /// gradient is computed for them, as the lab's `requires_grad = False`).
    /// Also tunes the allocator for libtorch ([`crate::keep_freed_memory`]).
    #[must_use]
    pub fn new(mut vs: nn::VarStore, net: Box<dyn ModuleT>, name: impl Into<String>) -> Self {
        vs.freeze();
        crate::keep_freed_memory();
        Model {
            vs,
            net,
            name: name.into(),
            channels_last: None,
        }
    }

    /// Adds a twin of the network, built by `build` on a new variable store,
    /// with this model's weights in NHWC layout; inputs in that layout then
    /// run on it (see [`Model::forward_t`]).
    ///
    /// # Errors
    /// If the twin's variables do not match this model's.
    pub fn with_channels_last_twin(
        self,
        build: impl FnOnce(&nn::Path) -> Box<dyn ModuleT>,
    ) -> Result<Self> {
        self.with_twin(|p| Twin::Any(build(p)))
    }

    fn with_twin(mut self, build: impl FnOnce(&nn::Path) -> Twin) -> Result<Self> {
        let mut vs = nn::VarStore::new(self.vs.device());
        let net = build(&vs.root());
        vs.copy(&self.vs)?;
        for (_, var) in vs.variables() {
            if var.dim() == 4 {
                let nhwc = to_channels_last(&var);
                tch::no_grad(|| var.shallow_clone().set_data(&nhwc));
            }
        }
        vs.freeze();
        self.channels_last = Some((vs, net));
        Ok(self)
    }

    /// The gradient of class `class`'s score with respect to each image of
    /// a batch in NHWC layout, through the one-class head of a SqueezeNet
    /// twin (see [`SqueezeNet11::class_score`]); `None` where the model has
    /// no such twin or `x` is in another layout. The same gradient as through
    /// the whole network, with a quarter fewer multiply-adds.
    pub(crate) fn class_gradient(&self, x: &Tensor, class: i64) -> Option<Result<Tensor>> {
        let Some((_, Twin::SqueezeNet(net))) = &self.channels_last else {
            return None;
        };
        if !is_channels_last(x) {
            return None;
        }
        if !(0..net.classes()).contains(&class) {
            return Some(Err(Error::parameter(
                "smoothgrad",
                "target",
                class,
                format!("must be in 0..{}", net.classes()),
            )));
        }
        Some(crate::attribution::vanilla::input_gradient(x, |input| {
            Ok(catch_libtorch(input, || net.class_score(input, class))?.sum(Kind::Float))
        }))
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

    /// Runs one forward and backward pass on a small batch so that libtorch's
    /// one-time set-up (thread pool, kernel selection, allocator) is paid here
    /// rather than by the first saliency map.
    ///
    /// # Errors
    /// If libtorch fails.
    pub fn warm_up(&self, batch: i64) -> Result<()> {
        let x = Tensor::zeros([batch, 3, 224, 224], (Kind::Float, self.device()));
        let targets = vec![0; batch as usize];
        let _grad = crate::attribution::vanilla_gradient(self, &x, &targets)?;
        if self.channels_last.is_some() {
            // SmoothGrad's layout has kernels of its own to set up, and so
            // has its one-class head.
            let nhwc = to_channels_last(&x);
            let _grad = crate::attribution::vanilla_gradient(self, &nhwc, &targets)?;
            if let Some(grad) = self.class_gradient(&nhwc, 0) {
                let _ = grad?;
            }
        }
        Ok(())
    }
}

/// Loads SqueezeNet 1.1 with torchvision's pretrained weights from a
/// safetensors file with torchvision's variable names
/// (`features.0.weight` ... `classifier.1.bias`), frozen, on `device`, and
/// runs one small forward and backward pass so the first real call is not
/// slowed by libtorch's set-up. On the CPU the model also keeps a twin with
/// its convolution weights in NHWC layout for SmoothGrad's batches (see
/// [`Model::forward_t`]); the twin computes ReLU and pooling in a faster order
/// and can score one class alone, with tch's numbers bit for bit
/// (`model/squeezenet.rs`).
///
/// # Errors
/// [`Error::NotFound`] if the file does not exist, [`Error::Format`] if it is
/// not valid safetensors, [`Error::Weights`] naming the first tensor that is
/// missing, mis-shaped or unexpected.
pub fn squeezenet1_1(weights: impl AsRef<Path>, device: Device) -> Result<Model> {
    let vs = nn::VarStore::new(device);
    let net = tch::vision::squeezenet::v1_1(&vs.root(), 1000);
    load_weights(&vs, weights.as_ref())?;
    let mut model = Model::new(vs, Box::new(net), "SqueezeNet 1.1");
    if device == Device::Cpu {
        model = model.with_twin(|p| Twin::SqueezeNet(Box::new(SqueezeNet11::new(p, 1000))))?;
    }
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
pub fn class_scores<M: ModuleT + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    check_batch("class_scores", x)?;
    let _guard = tch::no_grad_guard();
    forward(model, x)
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
pub(crate) fn targets_index(scores: &Tensor, targets: &[i64], op: &'static str) -> Result<Tensor> {
    check_targets(scores, targets, op)?;
    Ok(index_tensor(targets, scores.device()))
}

/// `targets` as an `[N, 1]` index tensor on `device`.
pub(crate) fn index_tensor(targets: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(targets).to_device(device).view([-1, 1])
}

/// Checks that `targets` holds one class of `scores` `[N, classes]` per row.
pub(crate) fn check_targets(scores: &Tensor, targets: &[i64], op: &'static str) -> Result<()> {
    let [n, classes] = scores.size()[..] else {
        return Err(Error::shape(
            op,
            "scores [N, classes]",
            format!("{:?}", scores.size()),
        ));
    };
    if targets.len() as i64 != n {
        return Err(Error::shape(
            op,
            format!("{n} target classes"),
            format!("{}", targets.len()),
        ));
    }
    if let Some((i, t)) = targets
        .iter()
        .enumerate()
        .find(|(_, &t)| !(0..classes).contains(&t))
    {
        return Err(Error::parameter(
            op,
            "target",
            format!("{t} (image {i})"),
            format!("must be in 0..{classes}"),
        ));
    }
    Ok(())
}

pub(crate) fn check_batch(op: &'static str, x: &Tensor) -> Result<()> {
    let s = x.size();
    if s.len() != 4 || s.contains(&0) {
        return Err(Error::shape(
            op,
            "a batch of images [N, C, H, W]",
            format!("{s:?}"),
        ));
    }
    if !x.is_floating_point() {
        return Err(Error::shape(
            op,
            "a float tensor (run preprocess first)",
            format!("{:?}", x.kind()),
        ));
    }
    crate::transforms::check_finite(op, x)
}

/// Runs `model.forward_t(x, false)`, turning a libtorch failure inside the
/// model (which tch reports by panicking) into an error.
pub(crate) fn forward<M: ModuleT + ?Sized>(model: &M, x: &Tensor) -> Result<Tensor> {
    catch_libtorch(x, || model.forward_t(x, false))
}

/// Runs `f` (a forward pass on `x`), turning a libtorch failure into an error.
fn catch_libtorch(x: &Tensor, f: impl FnOnce() -> Tensor) -> Result<Tensor> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let msg = crate::error::panic_message(payload.as_ref())
            .unwrap_or_else(|| "the model's forward pass failed".into());
        let first = msg.lines().next().unwrap_or_default().to_string();
        Error::shape(
            "model forward",
            "an input the model accepts",
            format!("{:?} ({first})", x.size()),
        )
    })
}
