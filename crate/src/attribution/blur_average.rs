//! The lab's sample answer to its SmoothGrad homework: average the max-abs
//! saliency maps of an image and of progressively blurred copies of it
//! (Gaussian, sigma 1, 3, 9, 27).
//!
//! This is *not* SmoothGrad: SmoothGrad adds i.i.d. noise and averages many
//! samples from the same distribution (see [`super::smoothgrad`]); blurring
//! removes detail, so the heavily blurred copies' maps describe different,
//! smoothed inputs. It is kept, under its own name, because the lab shows it.

use ndarray::Array3;
use tch::{Kind, Tensor};

use crate::attribution::{max_abs, vanilla_gradient};
use crate::error::Result;
use crate::model::Network;
use crate::transforms::{blur_image, preprocess_batch, stack_images, AsImage};

/// The blur widths of the lab's sample answer.
pub const LAB_SIGMAS: [f64; 4] = [1.0, 3.0, 9.0, 27.0];

/// The inputs, maps and average of [`blur_average`].
#[derive(Debug)]
pub struct BlurAverage {
    /// The original image and its blurred copies, `[H, W, 3]` each.
    pub inputs: Vec<Array3<u8>>,
    /// Their titles: `"Original"`, `"σ=1"`, ...
    pub titles: Vec<String>,
    /// Their gradients, `[1 + sigmas, 3, H, W]`.
    pub gradients: Tensor,
    /// Their max-abs maps, `[1 + sigmas, H, W]`.
    pub maps: Tensor,
    /// The mean of `maps`, `[H, W]`.
    pub average: Tensor,
}

/// The lab's `sg(idx)`: blurs the `u8` image with each sigma exactly as the
/// lab does (scipy semantics on `uint8`), computes the vanilla max-abs map of
/// the original and each copy for class `target`, and averages the maps.
///
/// # Errors
/// As [`blur_image`], [`preprocess_batch`] and [`vanilla_gradient`].
pub fn blur_average<N: Network + ?Sized>(
    model: &N,
    image: impl AsImage,
    target: i64,
    sigmas: &[f64],
) -> Result<BlurAverage> {
    let image = image.as_image();
    let mut inputs = vec![image.to_owned()];
    let mut titles = vec!["Original".to_string()];
    for &s in sigmas {
        inputs.push(blur_image(image, s)?);
        titles.push(format!("σ={s}"));
    }
    let x = preprocess_batch(stack_images(&inputs)?.view())?;
    let gradients = vanilla_gradient(model, &x, &vec![target; inputs.len()])?;
    let maps = max_abs(&gradients)?;
    let average = maps.mean_dim(0, false, Kind::Float);
    Ok(BlurAverage {
        inputs,
        titles,
        gradients,
        maps,
        average,
    })
}
