//! Maps that know nothing of the model, to compare real attribution maps
//! against: a random map, a centred Gaussian, and an edge detector (the
//! Sobel gradient magnitude of the image), which Adebayo et al. 2018 show
//! can look much like a saliency map. Each is a [`Method`], `[N, 1, H, W]`,
//! so the metrics and figures take them as they take the real methods.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};
use tch::{Kind, Tensor};

use crate::attribution::{Attributions, Batch, Method};
use crate::error::{Error, Result};
use crate::model::Network;

/// A checked batch's images, height and width.
fn dims(batch: &Batch<'_>) -> (i64, i64, i64) {
    let s = batch.x().size();
    (s[0], s[2], s[3])
}

/// Uniform random values in `[0, 1)`, seeded: image `i`'s map depends only
/// on the seed and `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RandomMap {
    /// The seed.
    pub seed: u64,
}

impl Method for RandomMap {
    fn name(&self) -> String {
        "random".into()
    }

    fn op(&self) -> &'static str {
        "random map"
    }

    fn attribute_batch(&self, _net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let (x, (n, h, w)) = (batch.x(), dims(batch));
        let uniform = Uniform::new(0.0f32, 1.0).map_err(|e| Error::Plot(e.to_string()))?;
        let maps: Vec<Tensor> = (0..n)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(i as u64);
                let v: Vec<f32> = (0..h * w).map(|_| uniform.sample(&mut rng)).collect();
                Tensor::from_slice(&v).view([1, 1, h, w])
            })
            .collect();
        Ok(Attributions::checked(
            Tensor::cat(&maps, 0).to_device(x.device()),
        ))
    }
}

/// A Gaussian bump at the image's centre, `exp(-r^2 / (2 sigma^2))` with
/// sigma a fraction of the image's side: the "objects are in the middle"
/// prior of photographs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CentreGaussian {
    /// Sigma as a fraction of the image's shorter side. Default 0.25.
    pub sigma: f64,
}

impl Default for CentreGaussian {
    fn default() -> Self {
        CentreGaussian { sigma: 0.25 }
    }
}

impl Method for CentreGaussian {
    fn name(&self) -> String {
        "centre".into()
    }

    fn validate(&self) -> Result<()> {
        if self.sigma.is_finite() && self.sigma > 0.0 {
            Ok(())
        } else {
            Err(Error::parameter(
                "CentreGaussian",
                "sigma",
                self.sigma,
                "must be positive",
            ))
        }
    }

    fn op(&self) -> &'static str {
        "centre Gaussian"
    }

    fn attribute_batch(&self, _net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let (x, (n, h, w)) = (batch.x(), dims(batch));
        let sigma = self.sigma * h.min(w) as f64;
        let opts = (Kind::Float, x.device());
        let ys = Tensor::arange(h, opts) - (h - 1) as f64 / 2.0;
        let xs = Tensor::arange(w, opts) - (w - 1) as f64 / 2.0;
        let r2 = ys.square().view([h, 1]) + xs.square().view([1, w]);
        let map = (r2 / (-2.0 * sigma * sigma)).exp();
        Ok(Attributions::checked(
            map.view([1, 1, h, w]).repeat([n, 1, 1, 1]),
        ))
    }
}

/// The Sobel edge magnitude of the image: `sqrt(gx^2 + gy^2)` of its
/// channel mean (3 x 3 Sobel kernels, edges replicated). It depends on the
/// image alone, so model randomisation cannot change it: Adebayo et al.'s
/// point of comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Edges;

impl Method for Edges {
    fn name(&self) -> String {
        "edges".into()
    }

    fn op(&self) -> &'static str {
        "edges"
    }

    fn attribute_batch(&self, _net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let x = batch.x();
        let gray = x
            .mean_dim(1, true, Kind::Float)
            .replication_pad2d([1, 1, 1, 1]);
        let gx = Tensor::from_slice(&[-1.0f32, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0])
            .to_device(x.device())
            .view([1, 1, 3, 3]);
        let gy = gx.transpose(2, 3).contiguous();
        let ex = gray.conv2d(&gx, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
        let ey = gray.conv2d(&gy, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
        Ok(Attributions::checked((ex.square() + ey.square()).sqrt()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn controls_have_the_images_size_and_ignore_the_model() {
        let net = tch::nn::func_t(|xs, _| xs.flatten(1, -1).narrow(1, 0, 2));
        let x = Tensor::rand([2, 3, 9, 12], (Kind::Float, Device::Cpu));
        for m in [
            Box::new(RandomMap { seed: 3 }) as Box<dyn Method>,
            Box::new(CentreGaussian::default()),
            Box::new(Edges),
        ] {
            let a = m.attribute(&net, &x, &[0, 1]).unwrap().values;
            assert_eq!(a.size(), [2, 1, 9, 12], "{}", m.name());
        }
        // A vertical step edge: Sobel finds it, and nothing on the flat sides.
        let step = Tensor::cat(
            &[
                Tensor::zeros([1, 3, 6, 3], (Kind::Float, Device::Cpu)),
                Tensor::ones([1, 3, 6, 3], (Kind::Float, Device::Cpu)),
            ],
            3,
        );
        let e = Edges.attribute(&net, &step, &[0]).unwrap().values;
        assert_eq!(e.double_value(&[0, 0, 3, 0]), 0.0);
        assert_eq!(e.double_value(&[0, 0, 3, 2]), 4.0); // 1 + 2 + 1 across the step
                                                        // The centre Gaussian peaks in the middle.
        let g = CentreGaussian::default()
            .attribute(&net, &x, &[0, 1])
            .unwrap()
            .values;
        assert!(g.double_value(&[0, 0, 4, 5]) > g.double_value(&[0, 0, 0, 0]));
    }
}
