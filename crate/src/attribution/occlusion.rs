//! Occlusion (Zeiler and Fergus, "Visualizing and Understanding
//! Convolutional Networks", ECCV 2014): slide a square window over the image,
//! replace what it covers (all channels) by a baseline value, and credit each
//! pixel with the mean drop of the target score over the windows that cover
//! it. No gradients: forward passes only. Captum:
//! `Occlusion(model).attribute(x, sliding_window_shapes=(C, w, w),
//! strides=(C, s, s), baselines=b, target=y)`, the same windows: `ceil((H -
//! w) / s) + 1` positions per axis, `s` apart, the last ones cut off at the
//! image's edge.

use tch::{Kind, Tensor};

use super::{Attributions, Batch, Method};
use crate::error::{Error, Result};
use crate::model::{copies, copies_score, Network};
use crate::support::catch_libtorch;

/// Occlusion's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Occlusion {
    /// The window's side in pixels. Default 15 (Captum's tutorials).
    pub window: i64,
    /// The step between windows. Default 8.
    pub stride: i64,
    /// The value that replaces the occluded pixels, in the preprocessed
    /// tensor's units. Default 0 (the dataset's mean colour).
    pub baseline: f64,
    /// Occluded copies per forward pass (Captum's `perturbations_per_eval`).
    /// Default 16.
    pub batch_size: usize,
}

impl Default for Occlusion {
    fn default() -> Self {
        Occlusion {
            window: 15,
            stride: 8,
            baseline: 0.0,
            batch_size: 16,
        }
    }
}

impl Occlusion {
    /// Sets the window's side.
    #[must_use]
    pub fn with_window(mut self, window: i64) -> Self {
        self.window = window;
        self
    }

    /// Sets the stride.
    #[must_use]
    pub fn with_stride(mut self, stride: i64) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the baseline value.
    #[must_use]
    pub fn with_baseline(mut self, baseline: f64) -> Self {
        self.baseline = baseline;
        self
    }

    /// Sets the number of occluded copies per forward pass.
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// The windows' starts along an axis of `len` pixels.
    fn starts(&self, len: i64) -> Vec<i64> {
        let shifts = (len - self.window + self.stride - 1) / self.stride + 1;
        (0..shifts).map(|k| k * self.stride).collect()
    }
}

impl Method for Occlusion {
    fn name(&self) -> String {
        "occlusion".into()
    }

    /// The windows on a 224 x 224 image.
    fn passes_per_image(&self) -> usize {
        self.starts(224).len().pow(2)
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, value: i64, why: &str| {
            Err(Error::parameter("Occlusion", name, value, why.to_string()))
        };
        if self.window < 1 {
            return bad("window", self.window, "must be at least 1");
        }
        if self.stride < 1 || self.stride > self.window {
            return bad(
                "stride",
                self.stride,
                "must be in 1..=window (no pixel left out)",
            );
        }
        if self.batch_size == 0 {
            return bad("batch_size", 0, "must be at least 1");
        }
        if !self.baseline.is_finite() {
            return Err(Error::parameter(
                "Occlusion",
                "baseline",
                self.baseline,
                "must be finite",
            ));
        }
        Ok(())
    }

    fn op(&self) -> &'static str {
        "occlusion"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let (x, targets) = (batch.x(), batch.targets());
        let size = x.size();
        let (h, w) = (size[2], size[3]);
        if self.window > h || self.window > w {
            return Err(Error::parameter(
                self.op(),
                "window",
                self.window,
                format!("larger than the image ({h} x {w})"),
            ));
        }
        let _guard = tch::no_grad_guard();
        let windows: Vec<(i64, i64)> = self
            .starts(w)
            .into_iter()
            .flat_map(|c| self.starts(h).into_iter().map(move |r| (r, c)))
            .collect();
        let mut out = Vec::with_capacity(targets.len());
        for (i, &target) in targets.iter().enumerate() {
            let image = x.narrow(0, i as i64, 1);
            let clean = catch_libtorch(&image, || copies_score(net, &copies(net, &image), target))?;
            let total = Tensor::zeros([1, 1, h, w], (Kind::Float, x.device()));
            let count = Tensor::zeros([1, 1, h, w], (Kind::Float, x.device()));
            for chunk in windows.chunks(self.batch_size) {
                let batch = image.repeat([chunk.len() as i64, 1, 1, 1]);
                for (j, &(r, c)) in chunk.iter().enumerate() {
                    let _ = batch
                        .get(j as i64)
                        .narrow(1, r, self.window.min(h - r))
                        .narrow(2, c, self.window.min(w - c))
                        .fill_(self.baseline);
                }
                let scores =
                    catch_libtorch(&batch, || copies_score(net, &copies(net, &batch), target))?;
                let drops = Vec::<f32>::try_from((&clean - scores).to_device(tch::Device::Cpu))?;
                for (&(r, c), d) in chunk.iter().zip(drops) {
                    let (wr, wc) = (self.window.min(h - r), self.window.min(w - c));
                    let _ = total
                        .narrow(2, r, wr)
                        .narrow(3, c, wc)
                        .g_add_scalar_(f64::from(d));
                    let _ = count.narrow(2, r, wr).narrow(3, c, wc).g_add_scalar_(1.0);
                }
            }
            out.push((total / count).expand([1, size[1], h, w], false));
        }
        Ok(Attributions::checked(Tensor::cat(&out, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_image_as_captums_do() {
        // 224 pixels, window 15, stride 8: ceil(209 / 8) + 1 = 28 windows, the
        // last at 216, cut to 8 pixels.
        let o = Occlusion::default();
        let s = o.starts(224);
        assert_eq!((s.len(), s[27]), (28, 216));
        assert_eq!(
            Occlusion::default().with_window(4).with_stride(4).starts(8),
            [0, 4]
        );
        assert!(o.clone().with_stride(16).validate().is_err());
    }

    #[test]
    fn a_pixel_gets_the_mean_drop_of_its_windows() {
        // Score = sum of pixel (0, 0) of a 1 x 2 x 2 image and nothing else;
        // windows of 1, stride 1, baseline 0: only pixel (0, 0) drops, by its value.
        let net = tch::nn::func_t(|xs, _| xs.narrow(2, 0, 1).narrow(3, 0, 1).flatten(1, -1));
        let x = Tensor::from_slice(&[2.0f32, 3.0, 4.0, 5.0]).view([1, 1, 2, 2]);
        let a = Occlusion::default()
            .with_window(1)
            .with_stride(1)
            .attribute(&net, &x, &[0])
            .unwrap()
            .values;
        assert_eq!(
            Vec::<f32>::try_from(a.flatten(0, -1)).unwrap(),
            [2.0, 0.0, 0.0, 0.0]
        );
    }
}
