//! Vanilla gradient saliency (Simonyan, Vedaldi and Zisserman, "Deep Inside
//! Convolutional Networks: Visualising Image Classification Models and
//! Saliency Maps", ICLR workshop 2014): the gradient of the target class score
//! with respect to the input image.

use tch::nn::ModuleT;
use tch::{Kind, Tensor};

use crate::error::Result;
use crate::model::{check_batch, forward, targets_index};

/// The gradient of each image's target-class score with respect to the
/// image: the lab's `compute_saliency_maps`, the full `[N, 3, H, W]` tensor
/// (`X.grad`). `x` is a preprocessed batch `[N, C, H, W]`, `targets` one class
/// per image. The model runs in evaluation mode; its weights receive no
/// gradient.
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
pub fn vanilla_gradient<M: ModuleT + ?Sized>(
    model: &M,
    x: &Tensor,
    targets: &[i64],
) -> Result<Tensor> {
    check_batch("vanilla_gradient", x)?;
    let input = x.detach().set_requires_grad(true);
    let scores = forward(model, &input)?;
    let index = targets_index(&scores, targets, "vanilla_gradient")?;
    let picked = scores.f_gather(1, &index, false)?.sum(Kind::Float);
    let mut grads = Tensor::f_run_backward(&[picked], &[&input], false, false)?;
    Ok(grads.remove(0))
}
