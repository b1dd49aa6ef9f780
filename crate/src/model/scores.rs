//! Class scores for any network: the logits without gradients, the
//! target's score per row, the top class.

use tch::{Device, Tensor};

use super::Network;
use crate::error::{Error, Result};
use crate::support::{catch_libtorch, check_batch, check_classes, check_targets, index_tensor};

/// Class scores `[N, classes]` of `model` for a batch `[N, C, H, W]`, in
/// evaluation mode and without recording gradients.
///
/// # Errors
/// [`Error::Shape`] if `x` is not a non-empty 4-D float tensor,
/// [`Error::Parameter`] if it holds NaN, [`Error::Torch`] if the model fails
/// on it (e.g. an image too small for its pooling layers).
pub fn class_scores<N: Network + ?Sized>(net: &N, x: &Tensor) -> Result<Tensor> {
    check_batch("class_scores", x)?;
    logits_without_gradients(net, x)
}

/// The logits of a checked batch, without recording gradients.
fn logits_without_gradients<N: Network + ?Sized>(net: &N, x: &Tensor) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    catch_libtorch(x, || net.logits(x))
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
fn targets_index(scores: &Tensor, targets: &[i64], op: &'static str) -> Result<Tensor> {
    check_targets(scores, targets, op)?;
    Ok(index_tensor(targets, scores.device()))
}

/// Checks that every target is one of the network's classes: against
/// [`Network::num_classes`] where the network knows it, else by one forward
/// pass over the batch (methods that then score one class alone would
/// otherwise fail inside libtorch).
pub(crate) fn check_network_classes<N: Network + ?Sized>(
    op: &'static str,
    net: &N,
    x: &Tensor,
    targets: &[i64],
) -> Result<()> {
    match net.num_classes() {
        Some(classes) => check_classes(op, targets, classes),
        // `x` is checked already: the forward pass alone.
        None => check_targets(&logits_without_gradients(net, x)?, targets, op),
    }
}
