//! DeepLift (Shrikumar, Greenside and Kundaje, "Learning Important Features
//! Through Propagating Activation Differences", ICML 2017) with the Rescale
//! rule, as Captum's `DeepLift` computes it: the image and its baseline go
//! through the network side by side; each ReLU passes back the gradient
//! times `(relu(x) - relu(x0)) / (x - x0)` (its own gradient where the two
//! inputs are within 1e-10), each max-pooling the difference of its
//! outputs shared as Captum's `maxpool` rule shares it; the map is
//! `(x - x0)` times what reaches the input. Its sum is `f(x) - f(x0)`
//! (completeness: [`DeepLift::completeness_delta`]).
//!
//! [`DeepLiftShap`] is the mean of DeepLift's maps over several baselines
//! (Captum's `DeepLiftShap`; Lundberg and Lee, "A Unified Approach to
//! Interpreting Model Predictions", NeurIPS 2017).
//!
//! Like Guided Backprop, it needs to see the network's ReLUs and poolings:
//! SqueezeNet from [`squeezenet1_1`](crate::squeezenet1_1) (by hand on its
//! fast path) and networks built from the crate's
//! [`layers`](crate::model::layers).

use std::ops::Range;

use tch::{Kind, Tensor};

use super::propagation::{attribute_with_rules, map_sums};
use super::{Attributions, Baseline, Batch, Method};
use crate::error::{Error, Result};
use crate::model::rules::{Op, OpKind, Recorded, Rules};
use crate::model::{class_scores, gather_scores, Network};

/// Captum's threshold below which an input difference counts as none.
pub const EPS: f64 = 1e-10;

/// How DeepLift goes back through max-pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum PoolingRule {
    /// Captum 0.9's `DeepLift`, as it computes: each window's output
    /// difference goes to the window's maximum in the image and in the
    /// baseline (`max_unpool2d`, so where windows overlap and share a
    /// maximum, one window's part is written over another's); and where a
    /// max-pooling takes a ReLU's output directly, Captum's hooks hand that
    /// ReLU the pooling's plain gradient (the hook that keeps a module's
    /// output gradient runs before the pooling's hook replaces it), so the
    /// pooling's rule reaches the input only where the ReLU falls back to
    /// its gradient. The sum of the map then misses `f(x) - f(x0)` by about
    /// half on SqueezeNet (Captum's own convergence delta says so).
    #[default]
    Captum,
    /// The same rule with every window's part added (as the gradient adds
    /// them) and handed to the ReLU before it: DeepLift's summation to
    /// delta holds, the map's sum is `f(x) - f(x0)` to rounding.
    Complete,
}

/// DeepLift (Rescale rule) from one baseline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeepLift {
    /// The reference input. Default zeros (the mean colour; Captum's).
    pub baseline: Baseline,
    /// The rule at max-pooling. Default [`PoolingRule::Captum`].
    pub pooling: PoolingRule,
}

impl DeepLift {
    /// Sets the rule at max-pooling.
    #[must_use]
    pub fn with_pooling(mut self, pooling: PoolingRule) -> Self {
        self.pooling = pooling;
        self
    }

    /// Sets the baseline.
    #[must_use]
    pub fn with_baseline(mut self, baseline: Baseline) -> Self {
        self.baseline = baseline;
        self
    }

    /// `sum(map) - (f(x) - f(x0))` per image `[N]` (double), `f` the
    /// target's score: what Captum's `compute_convergence_delta` reports.
    /// Zero, to rounding, for the Rescale rule.
    ///
    /// # Errors
    /// As [`Method::attribute`].
    pub fn completeness_delta(
        &self,
        net: &dyn Network,
        x: &Tensor,
        targets: &[i64],
        maps: &Tensor,
    ) -> Result<Tensor> {
        completeness_delta(net, x, &self.baseline.of(x)?, targets, maps)
    }
}

/// `sum(map) - (f(x) - f(b))` per image `[N]` (double), `f` the target's
/// score, `b` the baseline of each image: the completeness check of a
/// method that promises it (Integrated Gradients, DeepLift; Captum's
/// `compute_convergence_delta`).
///
/// # Errors
/// As [`class_scores`], for shapes that do not match.
pub fn completeness_delta(
    net: &dyn Network,
    x: &Tensor,
    baseline: &Tensor,
    targets: &[i64],
    maps: &Tensor,
) -> Result<Tensor> {
    if maps.size() != x.size() || baseline.size() != x.size() {
        return Err(Error::shape(
            "completeness_delta",
            format!("maps and baselines of the input's shape {:?}", x.size()),
            format!("maps {:?}, baselines {:?}", maps.size(), baseline.size()),
        ));
    }
    let score = |t: &Tensor| -> Result<Tensor> {
        Ok(gather_scores(&class_scores(net, t)?, targets)?.to_kind(Kind::Double))
    };
    Ok(map_sums(maps) - (score(x)? - score(baseline)?))
}

impl Method for DeepLift {
    fn name(&self) -> String {
        "deeplift".into()
    }

    fn validate(&self) -> Result<()> {
        self.baseline.validate("DeepLift")
    }

    fn op(&self) -> &'static str {
        "deeplift"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let baseline = self.baseline.of(batch.x())?;
        deeplift(net, batch, self.pooling, &baseline.unsqueeze(1))
    }
}

/// DeepLift of each image of `x` against each of its baselines `[N, B, C,
/// H, W]`, averaged over the baselines (Captum's `DeepLiftShap`; DeepLift
/// for `B` = 1). One baseline at a time: each pass takes a chunk of images
/// and their baselines side by side (a batch of ten, which stays in the
/// caches), as Captum's one batch of every pair computes them.
fn deeplift(
    net: &dyn Network,
    batch: &Batch<'_>,
    pooling: PoolingRule,
    baselines: &Tensor,
) -> Result<Attributions> {
    const OP: &str = "deeplift";
    let k = baselines.size()[1];
    let mut maps = Vec::with_capacity(k as usize);
    for j in 0..k {
        let b = baselines.select(1, j);
        let part = |range: &Range<usize>| b.narrow(0, range.start as i64, range.len() as i64);
        let prepare =
            |chunk: &Tensor, range: Range<usize>, t: &[i64]| -> Result<(Tensor, Vec<i64>)> {
                // Captum's batch: the images, then their baselines.
                Ok((Tensor::cat(&[chunk, &part(&range)], 0), [t, t].concat()))
            };
        let finish = |chunk: &Tensor, range: Range<usize>, r: Tensor| -> Result<Tensor> {
            Ok((chunk - part(&range)) * r.narrow(0, 0, chunk.size()[0]))
        };
        maps.push(
            attribute_with_rules(OP, net, batch, &Rescale(pooling), &prepare, &finish)?.values,
        );
    }
    let values = if k == 1 {
        maps.remove(0)
    } else {
        Tensor::stack(&maps, 1).mean_dim(1, false, Kind::Float)
    };
    Ok(Attributions::checked(values))
}

/// DeepLiftShap: DeepLift's map averaged over several baselines (Captum's
/// `DeepLiftShap`, each image paired with every baseline).
#[derive(Debug, Default)]
pub struct DeepLiftShap {
    /// The baselines, `[B, C, H, W]` preprocessed, shared by every image;
    /// `None`: [`DeepLiftShap::standard_baselines`] of each image.
    pub baselines: Option<Tensor>,
    /// The rule at max-pooling. Default [`PoolingRule::Captum`].
    pub pooling: PoolingRule,
}

impl PartialEq for DeepLiftShap {
    fn eq(&self, other: &Self) -> bool {
        self.pooling == other.pooling
            && match (&self.baselines, &other.baselines) {
                (None, None) => true,
                (Some(a), Some(b)) => a.size() == b.size() && a.equal(b),
                _ => false,
            }
    }
}

impl Clone for DeepLiftShap {
    fn clone(&self) -> Self {
        DeepLiftShap {
            baselines: self.baselines.as_ref().map(Tensor::shallow_clone),
            pooling: self.pooling,
        }
    }
}

impl DeepLiftShap {
    /// The standard baselines of a preprocessed image: zeros (the mean
    /// colour), black, and the image blurred (sigma 10): `[3, C, H, W]` for
    /// each image, `[N, 3, C, H, W]`.
    ///
    /// # Errors
    /// As [`Baseline::of`].
    pub fn standard_baselines(x: &Tensor) -> Result<Tensor> {
        let each = [Baseline::Zeros, Baseline::Black, Baseline::Blur(10.0)]
            .iter()
            .map(|b| b.of(x))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&each, 1))
    }

    /// Sets the baselines `[B, C, H, W]`.
    #[must_use]
    pub fn with_baselines(mut self, baselines: Tensor) -> Self {
        self.baselines = Some(baselines);
        self
    }

    /// Sets the rule at max-pooling.
    #[must_use]
    pub fn with_pooling(mut self, pooling: PoolingRule) -> Self {
        self.pooling = pooling;
        self
    }
}

impl Method for DeepLiftShap {
    fn name(&self) -> String {
        "deeplift-shap".into()
    }

    fn passes_per_image(&self) -> usize {
        self.baselines.as_ref().map_or(3, |b| b.size()[0] as usize)
    }

    fn op(&self) -> &'static str {
        "deeplift_shap"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let x = batch.x();
        let given = match &self.baselines {
            Some(b) => {
                let (bs, xs) = (b.size(), x.size());
                if b.dim() != 4 || bs[0] == 0 || bs[1..] != xs[1..] {
                    return Err(Error::shape(
                        "deeplift_shap",
                        format!(
                            "baselines [B >= 1, C, H, W] of the images' shape {:?}",
                            &xs[1..]
                        ),
                        format!("{bs:?}"),
                    ));
                }
                Some(b.to_device(x.device()).to_kind(x.kind()))
            }
            None => None,
        };
        let baselines = match given {
            Some(b) => b.unsqueeze(0).expand([x.size()[0], -1, -1, -1, -1], false),
            None => DeepLiftShap::standard_baselines(x)?,
        };
        deeplift(net, batch, self.pooling, &baselines)
    }
}

/// The Rescale rule at ReLUs and Captum's rule at max-poolings, on a batch
/// whose first half are the inputs and second half their baselines.
struct Rescale(PoolingRule);

/// A batch's two halves: the inputs' part and the baselines'.
fn halves(t: &Tensor) -> (Tensor, Tensor) {
    let n = t.size()[0] / 2;
    (t.narrow(0, 0, n), t.narrow(0, n, n))
}

impl Rules for Rescale {
    fn replaces(&self, kind: OpKind) -> bool {
        matches!(kind, OpKind::Relu | OpKind::MaxPool)
    }

    /// Captum's hooks: the ReLU's output gradient is kept by a hook that
    /// runs before the pooling's rule replaces it, so the Rescale
    /// multiplier meets the pooling's plain gradient (and the ReLU's other
    /// uses'); the pooling's rule reaches the input only where the ReLU
    /// falls back to its own gradient.
    fn relu_then_pool(
        &self,
        relu: &Recorded,
        pool: &Recorded,
        g: &Tensor,
        others: Option<&Tensor>,
    ) -> Result<Tensor> {
        if self.0 == PoolingRule::Complete {
            let g = self.backward(pool, g)?;
            let g = match others {
                Some(o) => g + o,
                None => g,
            };
            return self.backward(relu, &g);
        }
        let plain = match others {
            Some(o) => pool.gradient(g) + o,
            None => pool.gradient(g),
        };
        let ruled = self.backward(pool, g)?;
        Ok(rescale(relu, &plain, &relu.gradient(&ruled)))
    }

    fn backward(&self, op: &Recorded, g: &Tensor) -> Result<Tensor> {
        Ok(match &op.op {
            Op::Relu => rescale(op, g, &op.gradient(g)),
            Op::MaxPool { indices, .. } => {
                let (y, y0) = halves(&op.output);
                let top = y.maximum(&y0);
                let delta_out = Tensor::cat(&[&top - &y0, &y - &top], 0);
                let s = op.input.size();
                let (ho, wo) = (op.output.size()[2], op.output.size()[3]);
                let parts = g * delta_out;
                let unpooled = match self.0 {
                    PoolingRule::Captum => {
                        parts.max_unpool2d(&indices.view([s[0], s[1], ho, wo]), [s[2], s[3]])
                    }
                    PoolingRule::Complete => op.gradient(&parts),
                };
                let (a, b) = halves(&unpooled);
                let (x, x0) = halves(&op.input);
                let delta_in = x - x0;
                let shared = (a + b) / &delta_in;
                both(&shared, &delta_in, &op.gradient(g))
            }
            _ => op.gradient(g),
        })
    }
}

/// The Rescale rule at a ReLU `op` of a batch of inputs and baselines: `g *
/// (y - y0) / (x - x0)` (Captum's order), `fallback` where `|x - x0| <`
/// [`EPS`]. The differences are taken once for both halves and broadcast.
fn rescale(op: &Recorded, g: &Tensor, fallback: &Tensor) -> Tensor {
    let (x, x0) = halves(&op.input);
    let (y, y0) = halves(&op.output);
    let delta_in = x - x0;
    let pairs = |t: &Tensor| {
        let mut shape = vec![2];
        shape.extend_from_slice(&delta_in.size());
        t.reshape(shape.as_slice())
    };
    let rescaled = (pairs(g) * (y - y0).unsqueeze(0)) / delta_in.unsqueeze(0);
    let small = delta_in.abs().lt(EPS).unsqueeze(0);
    pairs(fallback)
        .where_self(&small, &rescaled)
        .reshape(g.size().as_slice())
}

/// `shared` (one half's values, for both halves) where the inputs differ by
/// [`EPS`] or more, `fallback` elsewhere.
fn both(shared: &Tensor, delta_in: &Tensor, fallback: &Tensor) -> Tensor {
    let small = delta_in.abs().lt(EPS);
    let n = delta_in.size()[0];
    Tensor::cat(
        &[
            fallback.narrow(0, 0, n).where_self(&small, shared),
            fallback.narrow(0, n, n).where_self(&small, shared),
        ],
        0,
    )
}
