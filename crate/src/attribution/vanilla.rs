//! Vanilla gradient saliency (Simonyan, Vedaldi and Zisserman, "Deep Inside
//! Convolutional Networks: Visualising Image Classification Models and
//! Saliency Maps", ICLR workshop 2014): the gradient of the target class score
//! with respect to the input image.

use tch::nn::ModuleT;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::{check_batch, check_targets, forward, index_tensor};

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
    let n = x.size()[0];
    if x.device() != Device::Cpu || n <= CPU_CHUNK {
        return gradient_of_batch(model, x, targets);
    }
    // Each image's gradient depends on that image alone: chunks give the same
    // numbers (bit for bit), faster, as a small batch's activations stay in
    // the caches.
    if targets.len() as i64 != n {
        return Err(Error::shape(
            "vanilla_gradient",
            format!("{n} target classes"),
            targets.len().to_string(),
        ));
    }
    let grads = (0..n)
        .step_by(CPU_CHUNK as usize)
        .map(|start| {
            let k = CPU_CHUNK.min(n - start);
            let t = &targets[start as usize..(start + k) as usize];
            gradient_of_batch(model, &x.narrow(0, start, k), t)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&grads, 0))
}

/// Images per forward/backward pass on the CPU. With SqueezeNet on the lab's
/// 25 images, chunks of 5 ran 1.6 times faster than one batch of 25 on a
/// 2-core machine (see `crate/benches/LOG.md`). On a GPU the whole batch goes
/// at once.
pub const CPU_CHUNK: i64 = 5;

/// One forward and backward pass over the whole batch (already checked).
pub(crate) fn gradient_of_batch<M: ModuleT + ?Sized>(
    model: &M,
    x: &Tensor,
    targets: &[i64],
) -> Result<Tensor> {
    // The index goes to the device before the forward pass: on a GPU the
    // copy waits for queued work, which is none yet.
    let index = index_tensor(targets, x.device());
    input_gradient(x, |input| {
        let scores = forward(model, input)?;
        check_targets(&scores, targets, "vanilla_gradient")?;
        Ok(scores.f_gather(1, &index, false)?.sum(Kind::Float))
    })
}

/// The gradient of the scalar `score(input)` with respect to the input,
/// where `input` is `x` detached and made to record gradients.
pub(crate) fn input_gradient(
    x: &Tensor,
    score: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let input = x.detach().set_requires_grad(true);
    let score = score(&input)?;
    let mut grads = Tensor::f_run_backward(&[score], &[&input], false, false)?;
    Ok(grads.remove(0))
}
