//! When is `n` enough for the noise tunnel? SmoothGrad is a Monte Carlo
//! mean: its map with `n` samples and its map with `2n` other samples agree
//! more as `n` grows. Their Spearman rank correlation, per `n`, is the
//! curve a student reads it from.

use tch::Tensor;

use super::similarity::spearman;
use crate::attribution::{max_abs, Method, NoiseTunnel, SmoothGradConfig};
use crate::error::Result;
use crate::model::Network;

/// For each `n` of `ns`: the Spearman rank correlation, image by image, of
/// the absolute maps of the noise tunnel over `method` with `n` samples
/// (seed `config.seed`) and with `2n` samples (seed `config.seed + 1`, so the
/// two estimates share no noise). Rows follow `ns`, columns the images.
///
/// # Errors
/// As the tunnel's.
pub fn tunnel_convergence<M: Method + Clone>(
    net: &dyn Network,
    method: &M,
    x: &Tensor,
    targets: &[i64],
    config: &SmoothGradConfig,
    ns: &[usize],
) -> Result<Vec<Vec<f64>>> {
    ns.iter()
        .map(|&n| {
            let map = |samples: usize, seed: u64| -> Result<Tensor> {
                let cfg = config.clone().with_samples(samples).with_seed(seed);
                max_abs(
                    &NoiseTunnel::new(method.clone(), cfg)
                        .estimate(net, x, targets)?
                        .mean,
                )
            };
            let (a, b) = (
                map(n, config.seed)?,
                map(2 * n, config.seed.wrapping_add(1))?,
            );
            (0..targets.len() as i64)
                .map(|i| spearman(&a.get(i), &b.get(i)))
                .collect()
        })
        .collect()
}
