//! The untrained network's initialisation, which model randomisation
//! (Adebayo et al. 2018) puts back: [`Init`] per variable (torchvision's
//! for SqueezeNet), the layers that hold weights in the order they run, and
//! [`Model::reinitialise`] / [`Model::restore`].

use tch::Tensor;

use super::Model;
use crate::error::{Error, Result};

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
pub(super) fn default_init(name: &str) -> Init {
    if name.ends_with("bias") {
        Init::Zeros
    } else {
        Init::KaimingUniform
    }
}

/// torchvision's SqueezeNet initialisation: Kaiming uniform convolutions,
/// the final one `N(0, 0.01^2)`, zero biases.
pub(super) fn squeezenet_init(name: &str) -> Init {
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

impl Model {
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
}
