//! libtorch helpers the model and the methods share: the targets as an index,
//! the target scores' sum to backpropagate, a pass whose libtorch failure
//! becomes an error (without a panic message), the input's gradient, and
//! chunks of images on the CPU.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// `targets` as an `[N, 1]` index tensor on `device`.
pub(crate) fn index_tensor(targets: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(targets).to_device(device).view([-1, 1])
}

/// The score of each row's target, summed over the rows: `scores` `[N,
/// classes]`, the targets checked already (at the door: a method's
/// `Batch`). Backpropagating the sum is the lab's
/// `scores.backward(torch.ones(N))`: each image's score depends on that
/// image alone, so the gradients do not mix.
pub(crate) fn target_score_sum(scores: &Tensor, targets: &[i64]) -> Result<Tensor> {
    let index = index_tensor(targets, scores.device());
    Ok(scores.f_gather(1, &index, false)?.sum(Kind::Float))
}

thread_local! {
    /// How many [`catch_libtorch`] calls this thread is inside.
    static CATCHING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Whether a panic on this thread now is one the crate catches and turns
/// into an error ([`catch_libtorch`]): panic hooks keep quiet about it.
pub(crate) fn panic_is_caught() -> bool {
    CATCHING.with(std::cell::Cell::get) > 0
}

/// Wraps the panic hook in place (once per process) so that it stays quiet
/// about the panics [`catch_libtorch`] turns into errors; hooks set later
/// replace it (the crate's own, `short_panic_messages`, asks
/// [`panic_is_caught`] itself).
fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_is_caught() {
                previous(info);
            }
        }));
    });
}

/// Runs `f` (a pass through a network on `x`), turning a libtorch failure
/// inside it (which tch reports by panicking) into an error naming `x`'s
/// shape, without a panic message on stderr: the error says it.
pub(crate) fn catch_libtorch<T>(x: &Tensor, f: impl FnOnce() -> T) -> Result<T> {
    struct Inside;
    impl Drop for Inside {
        fn drop(&mut self) {
            CATCHING.with(|c| c.set(c.get().saturating_sub(1)));
        }
    }
    quiet_caught_panics();
    CATCHING.with(|c| c.set(c.get() + 1));
    let inside = Inside;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    drop(inside);
    caught.map_err(|payload| {
        let msg = crate::error::panic_message(payload.as_ref())
            .unwrap_or_else(|| "the model's forward pass failed".into());
        let first = msg.lines().next().unwrap_or_default().to_string();
        Error::shape(
            "model forward",
            "an input the model accepts",
            format!("{:?} ({first})", x.size()),
        )
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

/// The images per forward/backward pass on the CPU for a batch of distinct
/// images. With SqueezeNet on the lab's 25 images, chunks of 5 ran 1.6 times
/// faster than one batch of 25 on a 2-core machine (`crate/benches/LOG.md`):
/// a small batch's activations stay in the caches. On a GPU the whole batch
/// goes at once.
pub const CPU_CHUNK: i64 = 5;

/// The chunks of at most `size` of `n` images, in order, as index ranges;
/// a last chunk that would hold one image joins the chunk before it (with
/// `size` above 1). oneDNN computes a batch of one image with other kernels
/// than a larger batch, which round differently: the lab's image 24 alone
/// is 9.2e-4 (relative L2) from its vanilla gradient in any larger batch,
/// where every batch size tried (2 to 8, 10, 13, 25) agrees bit for bit
/// (`crate/benches/LOG.md`). So `n` images in chunks give each image the
/// numbers of the whole batch at once, as the reference implementations
/// compute it.
///
/// ```
/// use saliency_lab::chunk_ranges;
/// assert_eq!(chunk_ranges(11, 5), [0..5, 5..11]);
/// assert_eq!(chunk_ranges(12, 5), [0..5, 5..10, 10..12]);
/// assert_eq!(chunk_ranges(3, 1), [0..1, 1..2, 2..3]);
/// ```
#[must_use]
pub fn chunk_ranges(n: usize, size: usize) -> Vec<std::ops::Range<usize>> {
    let size = size.max(1);
    let mut ranges: Vec<_> = (0..n)
        .step_by(size)
        .map(|start| start..(start + size).min(n))
        .collect();
    if size > 1 && ranges.len() > 1 && ranges.last().is_some_and(|r| r.len() == 1) {
        let last = ranges.pop().map_or(n, |r| r.end);
        if let Some(before) = ranges.last_mut() {
            before.end = last;
        }
    }
    ranges
}

/// Runs `f` on `x` in chunks of [`CPU_CHUNK`] images on the CPU
/// ([`chunk_ranges`]; whole on another device), with each chunk's targets,
/// and concatenates the results along the first axis. Each image's result
/// must depend on that image alone.
pub(crate) fn in_chunks(
    x: &Tensor,
    targets: &[i64],
    mut f: impl FnMut(&Tensor, &[i64]) -> Result<Tensor>,
) -> Result<Tensor> {
    in_indexed_chunks(x, targets, |x, _, t| f(x, t))
}

/// [`in_chunks`], `f` also given the chunk's images' indices in `x`.
pub(crate) fn in_indexed_chunks(
    x: &Tensor,
    targets: &[i64],
    mut f: impl FnMut(&Tensor, std::ops::Range<usize>, &[i64]) -> Result<Tensor>,
) -> Result<Tensor> {
    let n = x.size()[0];
    if x.device() != Device::Cpu || n <= CPU_CHUNK {
        return f(x, 0..n as usize, targets);
    }
    let parts = chunk_ranges(n as usize, CPU_CHUNK as usize)
        .into_iter()
        .map(|r| {
            f(
                &x.narrow(0, r.start as i64, r.len() as i64),
                r.clone(),
                &targets[r],
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0))
}
