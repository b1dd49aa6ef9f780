//! Vanilla gradient saliency (Simonyan, Vedaldi and Zisserman, "Deep Inside
//! Convolutional Networks: Visualising Image Classification Models and
//! Saliency Maps", ICLR workshop 2014): the gradient of the target class score
//! with respect to the input image. Captum: `Saliency(abs=False)`.

use tch::Tensor;

use super::{copies_gradient, gradient, Attributions, Batch, Method};
use crate::error::Result;
use crate::model::Network;

/// The vanilla gradient as a [`Method`] (no parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vanilla;

impl Method for Vanilla {
    fn name(&self) -> String {
        "vanilla".into()
    }

    fn op(&self) -> &'static str {
        "vanilla_gradient"
    }

    fn is_gradient(&self) -> bool {
        true
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        Ok(Attributions::checked(gradient(net, batch)?))
    }

    /// On the network's fast path for copies, where it has one.
    fn attribute_copies(&self, net: &dyn Network, copies: &Tensor, target: i64) -> Result<Tensor> {
        copies_gradient(net, copies, target)
    }
}

/// The gradient of each image's target-class score with respect to the
/// image: the lab's `compute_saliency_maps`, the full `[N, 3, H, W]` tensor
/// (`X.grad`). `x` is a preprocessed batch `[N, C, H, W]`, `targets` one class
/// per image. The network runs in evaluation mode, whole, in the default
/// layout; its weights receive no gradient. On the CPU the batch goes through
/// in chunks of [`CPU_CHUNK`](crate::CPU_CHUNK) images, never one image alone
/// ([`chunk_ranges`](crate::chunk_ranges)): each image's gradient depends on
/// that image alone, so the numbers are the same, bit for bit, and come
/// faster (a small batch's activations stay in the caches).
///
/// Backpropagating the sum of the target scores is the lab's
/// `scores.backward(torch.ones(N))`: each image's score depends on that image
/// alone, so the gradients do not mix.
///
/// # Errors
/// [`crate::Error::Shape`] if `x` is not a non-empty float batch or `targets`
/// has not one class per image, [`crate::Error::Parameter`] if `x` holds NaN
/// or a target lies outside the model's classes.
///
/// ```no_run
/// use saliency_lab::{assets, attribution, load_imagenet_val, preprocess_batch, squeezenet1_1};
/// let data = load_imagenet_val(assets::data_path()?)?;
/// let model = squeezenet1_1(assets::weights_path()?, tch::Device::Cpu)?;
/// let x = preprocess_batch(data.images.view())?;
/// let grad = attribution::vanilla_gradient(&model, &x, &data.labels)?;
/// assert_eq!(grad.size(), [25, 3, 224, 224]);
/// # Ok::<(), saliency_lab::Error>(())
/// ```
pub fn vanilla_gradient<N: Network + ?Sized>(
    net: &N,
    x: &Tensor,
    targets: &[i64],
) -> Result<Tensor> {
    // The method without its warnings' scan: this function returns the values alone.
    gradient(&net, &Batch::new(Vanilla.op(), &net, x, targets)?)
}
