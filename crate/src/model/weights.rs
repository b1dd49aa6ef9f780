//! Loading weights: SqueezeNet 1.1 with torchvision's pretrained weights
//! ([`squeezenet1_1`]), and any safetensors file into a variable store,
//! checked tensor by tensor ([`load_weights`]).

use std::path::{Path, PathBuf};

use tch::{nn, Device, Tensor};

use super::{Model, SqueezeNet11};
use crate::error::{Error, Result};

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
