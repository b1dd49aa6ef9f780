//! The backward pass with rules ([`Rules`]) in place of the gradient at some
//! operations: what Guided Backprop, Deconvolution, DeepLift and LRP share.
//!
//! On a network whose fast paths offer it
//! ([`FastPaths::propagate`](crate::model::FastPaths::propagate): SqueezeNet
//! from [`squeezenet1_1`](crate::squeezenet1_1)) the pass is by hand. On any
//! other network that can be looked inside ([`Network::inspect`]: built from
//! the crate's [`layers`](crate::model::layers)) a forward pass intercepts
//! the operations the rules replace ([`Pass::intercepting`]), each output a
//! new leaf of the autograd graph; [`propagate`] then goes back from the
//! last to the first, each operation's rule giving the relevance at its
//! input, and autograd carrying it through what lies between (the
//! concatenations, reshapes and other operations the rules keep the
//! gradient of). Captum and Zennit do the same with a hook per layer.

use std::ops::Range;

use tch::{Kind, Tensor};

use super::guided_backprop::inspect;
use super::{Attributions, Batch};
use crate::error::Result;
use crate::model::rules::{OpKind, Rules};
use crate::model::{Network, Pass};
use crate::support::{catch_libtorch, in_indexed_chunks, target_score_sum};

/// The kinds of operation `rules` replaces (what a pass must intercept).
pub(crate) fn kinds(rules: &dyn Rules) -> Vec<OpKind> {
    [
        OpKind::Conv,
        OpKind::Linear,
        OpKind::Relu,
        OpKind::MaxPool,
        OpKind::AvgPool,
    ]
    .into_iter()
    .filter(|&k| rules.replaces(k))
    .collect()
}

/// The relevance at `input` of `score`, a scalar computed from `input` (a
/// tensor that records gradients) by a pass made with
/// [`Pass::intercepting`] the kinds `rules` replaces: the backward pass
/// with `rules` at every intercepted operation, from the last to the first,
/// so that each operation's relevance is complete (every later use of its
/// output has given its part) before its rule runs.
///
/// # Errors
/// [`crate::Error::Torch`] if libtorch fails.
pub fn propagate(pass: Pass, score: &Tensor, input: &Tensor, rules: &dyn Rules) -> Result<Tensor> {
    let ops = pass.into_ops();
    let mut leaves: Vec<&Tensor> = vec![input];
    leaves.extend(ops.iter().map(|t| &t.leaf));
    let mut grads: Vec<Option<Tensor>> = (0..leaves.len()).map(|_| None).collect();
    let add = |grads: &mut Vec<Option<Tensor>>, new: Vec<Tensor>| {
        for (slot, g) in grads.iter_mut().zip(new) {
            if g.defined() {
                *slot = Some(match slot.take() {
                    Some(acc) => acc + g,
                    None => g,
                });
            }
        }
    };
    let top = Tensor::f_run_backward(&[score], &leaves, false, false)?;
    add(&mut grads, top);
    let mut i = ops.len();
    while i > 0 {
        i -= 1;
        let Some(g) = grads[i + 1].take() else {
            continue;
        };
        let (op, below) = if pools_a_relu(&ops, i) {
            // A max-pooling of a ReLU's output: the pair at once
            // (Rules::relu_then_pool), back to the ReLU's input.
            let others = grads[i].take();
            let below =
                rules.relu_then_pool(&ops[i - 1].record, &ops[i].record, &g, others.as_ref())?;
            i -= 1;
            (&ops[i], below)
        } else {
            (&ops[i], rules.backward(&ops[i].record, &g)?)
        };
        // The backward pass of the scalar `input . below` hands `below` to
        // the operation's input, and on through what lies between it and
        // the leaves before it (libtorch takes no gradient for a root).
        let root = op.input.reshape([-1]).dot(&below.reshape([-1]));
        let back = Tensor::f_run_backward(&[root], &leaves[..=i], false, false)?;
        add(&mut grads, back);
    }
    Ok(grads[0].take().unwrap_or_else(|| input.zeros_like()))
}

/// Whether operation `i` is a max-pooling of operation `i - 1`'s output, a
/// ReLU's, as it is (not reshaped or cut).
fn pools_a_relu(ops: &[crate::model::layers::Traced], i: usize) -> bool {
    use crate::model::rules::Op;
    i > 0
        && matches!(ops[i].record.op, Op::MaxPool { .. })
        && matches!(ops[i - 1].record.op, Op::Relu)
        && ops[i].input.data_ptr() == ops[i - 1].leaf.data_ptr()
        && ops[i].input.size() == ops[i - 1].leaf.size()
}

/// Makes the batch a propagation runs on from a chunk of images (their
/// indices in the whole batch) and their targets.
pub(crate) type Prepare<'a> =
    &'a dyn Fn(&Tensor, Range<usize>, &[i64]) -> Result<(Tensor, Vec<i64>)>;

/// Makes the maps of a chunk of images (their indices in the whole batch)
/// from the relevance at the batch [`Prepare`] made.
pub(crate) type Finish<'a> = &'a dyn Fn(&Tensor, Range<usize>, Tensor) -> Result<Tensor>;

/// Each image's relevance for its target: by hand where the network's fast
/// paths offer it, else through a pass inside the network ([`propagate`]).
/// `prepare` makes the batch the pass runs on from a chunk of images and
/// their targets (DeepLift appends its baselines), and `finish` the map
/// from the chunk and the relevance at that batch.
pub(crate) fn attribute_with_rules(
    op: &'static str,
    net: &dyn Network,
    batch: &Batch<'_>,
    rules: &dyn Rules,
    prepare: Prepare,
    finish: Finish,
) -> Result<Attributions> {
    let values = in_indexed_chunks(batch.x(), batch.targets(), |x, range, t| {
        let (batch, batch_targets) = prepare(x, range.clone(), t)?;
        if let Some(fast) = net.fast() {
            if let Some(r) =
                catch_libtorch(&batch, || fast.propagate(&batch, &batch_targets, rules))?
            {
                return finish(x, range, r?);
            }
        }
        let view = inspect(op, net)?;
        let input = batch.detach().set_requires_grad(true);
        let mut pass = Pass::intercepting(&kinds(rules));
        let logits = catch_libtorch(&input, || view.logits_traced(&input, &mut pass))?;
        let score = target_score_sum(&logits, &batch_targets)?;
        finish(x, range, propagate(pass, &score, &input, rules)?)
    })?;
    Ok(Attributions::checked(values))
}

/// The batch as it is, and its targets.
pub(crate) fn as_it_is(x: &Tensor, _: Range<usize>, targets: &[i64]) -> Result<(Tensor, Vec<i64>)> {
    Ok((x.shallow_clone(), targets.to_vec()))
}

/// The relevance at the input is the map.
pub(crate) fn the_relevance(_x: &Tensor, _: Range<usize>, relevance: Tensor) -> Result<Tensor> {
    Ok(relevance)
}

/// `sum(map)` per image `[N]`, in double precision.
pub(crate) fn map_sums(maps: &Tensor) -> Tensor {
    let n = maps.size()[0];
    maps.to_kind(Kind::Double)
        .reshape([n, -1])
        .sum_dim_intlist(1, false, Kind::Double)
}
