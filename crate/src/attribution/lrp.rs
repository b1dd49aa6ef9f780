//! Layer-wise Relevance Propagation (Bach et al., "On Pixel-Wise
//! Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance
//! Propagation", PLOS ONE 2015; Montavon et al., "Layer-Wise Relevance
//! Propagation: An Overview", 2019): the target's score, as relevance 1 (the
//! target's one-hot, as Zennit's examples give it), passed back layer by
//! layer to the pixels, each layer sharing out what it received among its
//! inputs by a rule.
//!
//! Each rule is Zennit's (`zennit.rules`, version 0.5), with its stabiliser
//! (`z + sign(z) * eps`, `sign(0) = 1`); `x+`, `x-` are an input's positive
//! and negative parts, `w+`, `w-` the weights':
//!
//! | rule | a convolution's or fully connected layer's input gets |
//! | --- | --- |
//! | `epsilon` | `x * W^T (R / stab(z, epsilon))`, `z` the layer's output |
//! | `zplus` | `x+ * W+^T s + x- * W-^T s`, `s = R / stab(W+ x+ + b+ + W- x-)` |
//! | `alpha2-beta1` | `2 (x+ W+^T s+ + x- W-^T s+) - (x+ W-^T s- + x- W+^T s-)`, `s+` as `zplus`'s, `s-` over `W- x+ + b- + W+ x-` |
//! | `gamma` | as `zplus` with `W + gamma W+` and `W + gamma W-`, where `z > 0`; the mirror image where `z < 0` (Zennit's generalised rule) |
//! | `flat` (first layer of `epsilon-plus-flat`) | `1^T (R / stab(1 . 1))`: spread evenly over the receptive field |
//! | `zbox` (first layer of `epsilon-gamma-box`) | `x W^T s - l W+^T s - h W-^T s`, `s = R / stab(z - W+ l - b+ - W- h - b-)`, `l`, `h` the input's bounds |
//!
//! Everything else is Zennit's base layer map: ReLUs pass the relevance
//! through, global average pooling shares it in proportion to its inputs
//! (Zennit's `Norm`), max-pooling gives it to the window's maximum (the
//! gradient). A single rule ([`LrpRule::Epsilon`], [`LrpRule::Gamma`],
//! [`LrpRule::ZPlus`], [`LrpRule::Alpha2Beta1`]) applies to every
//! convolution and fully connected layer; the composites are Zennit's of the
//! same name: [`LrpRule::EpsilonPlus`] (`zplus` for convolutions, `epsilon`
//! for fully connected layers), [`LrpRule::EpsilonPlusFlat`] (and `flat` for
//! the first layer), [`LrpRule::EpsilonAlpha2Beta1`] (`alpha2-beta1` for
//! convolutions), [`LrpRule::EpsilonGammaBox`] (`gamma` for convolutions,
//! `zbox` for the first, with the bounds of a preprocessed image: `(0 -
//! mean) / std` and `(1 - mean) / std` per channel). SqueezeNet has no fully
//! connected layer (its classifier is a 1x1 convolution): there
//! `epsilon-plus` is `zplus` and `epsilon-alpha2-beta1` is `alpha2-beta1`.
//!
//! Where an input is never negative (after a ReLU, a max-pooling of ReLUs),
//! the terms of `x-` are zero and are not computed: the same numbers, a
//! convolution or two fewer per layer.
//!
//! Like Guided Backprop, it needs to see the network's layers: SqueezeNet
//! from [`squeezenet1_1`](crate::squeezenet1_1) (by hand on its fast path)
//! and networks built from the crate's [`layers`](crate::model::layers).

use tch::Tensor;

use super::propagation::{as_it_is, attribute_with_rules, map_sums, the_relevance};
use super::{Attributions, Batch, Method};
use crate::error::{Error, Result};
use crate::model::rules::{ConvParams, Op, OpKind, Recorded, Rules};
use crate::model::Network;
use crate::transforms::{SQUEEZENET_MEAN, SQUEEZENET_STD};

/// Which rule, or composite of rules (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LrpRule {
    /// LRP-epsilon at every layer.
    Epsilon,
    /// Zennit's generalised gamma rule at every layer.
    Gamma,
    /// z+ (alpha 1, beta 0) at every layer.
    #[cfg_attr(feature = "cli", value(name = "zplus"))]
    ZPlus,
    /// alpha 2, beta 1 at every layer.
    #[cfg_attr(feature = "cli", value(name = "alpha2-beta1"))]
    Alpha2Beta1,
    /// Zennit's `EpsilonPlus`: z+ for convolutions, epsilon for fully
    /// connected layers.
    #[default]
    EpsilonPlus,
    /// Zennit's `EpsilonPlusFlat`: as `EpsilonPlus`, and flat for the first
    /// layer.
    EpsilonPlusFlat,
    /// Zennit's `EpsilonAlpha2Beta1`: alpha 2, beta 1 for convolutions,
    /// epsilon for fully connected layers.
    #[cfg_attr(feature = "cli", value(name = "epsilon-alpha2-beta1"))]
    EpsilonAlpha2Beta1,
    /// Zennit's `EpsilonGammaBox`: zbox for the first convolution, gamma for
    /// the others, epsilon for fully connected layers.
    EpsilonGammaBox,
}

impl LrpRule {
    /// Every rule and composite.
    pub const ALL: [LrpRule; 8] = [
        LrpRule::Epsilon,
        LrpRule::Gamma,
        LrpRule::ZPlus,
        LrpRule::Alpha2Beta1,
        LrpRule::EpsilonPlus,
        LrpRule::EpsilonPlusFlat,
        LrpRule::EpsilonAlpha2Beta1,
        LrpRule::EpsilonGammaBox,
    ];

    /// The name the command line gives it (`epsilon-plus-flat`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            LrpRule::Epsilon => "epsilon",
            LrpRule::Gamma => "gamma",
            LrpRule::ZPlus => "zplus",
            LrpRule::Alpha2Beta1 => "alpha2-beta1",
            LrpRule::EpsilonPlus => "epsilon-plus",
            LrpRule::EpsilonPlusFlat => "epsilon-plus-flat",
            LrpRule::EpsilonAlpha2Beta1 => "epsilon-alpha2-beta1",
            LrpRule::EpsilonGammaBox => "epsilon-gamma-box",
        }
    }

    /// The rule called `name`.
    ///
    /// # Errors
    /// [`Error::Parameter`] for another name, listing the names.
    pub fn parse(name: &str) -> Result<LrpRule> {
        LrpRule::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = LrpRule::ALL.iter().map(|r| r.name()).collect();
                Error::parameter(
                    "Lrp",
                    "rule",
                    name,
                    format!("expected one of {}", names.join(", ")),
                )
            })
    }

    /// The rule a layer gets: `kind` (a convolution or a fully connected
    /// layer), first or not.
    fn at(self, kind: OpKind, first: bool) -> Layer {
        let conv = kind == OpKind::Conv;
        match self {
            LrpRule::Epsilon => Layer::Epsilon,
            LrpRule::Gamma => Layer::Gamma,
            LrpRule::ZPlus => Layer::ZPlus,
            LrpRule::Alpha2Beta1 => Layer::AlphaBeta,
            _ if !(conv || first && self == LrpRule::EpsilonPlusFlat) => Layer::Epsilon,
            LrpRule::EpsilonPlus => Layer::ZPlus,
            LrpRule::EpsilonPlusFlat if first => Layer::Flat,
            LrpRule::EpsilonPlusFlat => Layer::ZPlus,
            LrpRule::EpsilonAlpha2Beta1 => Layer::AlphaBeta,
            LrpRule::EpsilonGammaBox if first => Layer::ZBox,
            LrpRule::EpsilonGammaBox => Layer::Gamma,
        }
    }
}

/// A change of a layer's parameters (weight or bias, and gamma).
type Modifier = fn(&Tensor, f64) -> Tensor;

/// A single layer's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Epsilon,
    Gamma,
    ZPlus,
    AlphaBeta,
    Flat,
    ZBox,
}

/// Layer-wise Relevance Propagation with a rule or composite, Zennit's
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrp {
    /// The rule or composite. Default [`LrpRule::EpsilonPlus`].
    pub rule: LrpRule,
    /// The epsilon rule's epsilon. Default 1e-6 (Zennit's).
    pub epsilon: f64,
    /// The gamma rule's gamma. Default 0.25 (Zennit's).
    pub gamma: f64,
    /// The other rules' stabiliser. Default 1e-6 (Zennit's).
    pub stabilizer: f64,
}

impl Default for Lrp {
    fn default() -> Self {
        Lrp {
            rule: LrpRule::EpsilonPlus,
            epsilon: 1e-6,
            gamma: 0.25,
            stabilizer: 1e-6,
        }
    }
}

impl Lrp {
    /// LRP with `rule`, Zennit's defaults otherwise.
    #[must_use]
    pub fn new(rule: LrpRule) -> Self {
        Lrp {
            rule,
            ..Lrp::default()
        }
    }

    /// Sets the rule.
    #[must_use]
    pub fn with_rule(mut self, rule: LrpRule) -> Self {
        self.rule = rule;
        self
    }

    /// Sets the epsilon rule's epsilon.
    #[must_use]
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Sets the gamma rule's gamma.
    #[must_use]
    pub fn with_gamma(mut self, gamma: f64) -> Self {
        self.gamma = gamma;
        self
    }

    /// `sum(map) - 1` per image `[N]` (double): how much of the target's
    /// relevance (1) did not reach the pixels (what the biases and the
    /// stabilisers absorbed, or added), as Zennit's examples check it.
    pub fn relevance_delta(maps: &Tensor) -> Tensor {
        map_sums(maps) - 1.0
    }
}

impl Method for Lrp {
    fn name(&self) -> String {
        "lrp".into()
    }

    fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("epsilon", self.epsilon),
            ("stabilizer", self.stabilizer),
            ("gamma", self.gamma),
        ] {
            let ok = value.is_finite() && (value > 0.0 || (name == "gamma" && value == 0.0));
            if !ok {
                return Err(Error::parameter(
                    "Lrp",
                    name,
                    value,
                    if name == "gamma" {
                        "must be finite and at least 0"
                    } else {
                        "must be positive and finite"
                    },
                ));
            }
        }
        Ok(())
    }

    fn op(&self) -> &'static str {
        "lrp"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let bounds = if self.rule == LrpRule::EpsilonGammaBox {
            Some(box_bounds(batch.x())?)
        } else {
            None
        };
        let rules = LrpRules { lrp: self, bounds };
        attribute_with_rules(self.op(), net, batch, &rules, &as_it_is, &the_relevance)
    }
}

/// The bounds of a preprocessed image, `[1, 3, 1, 1]` each: `(0 - mean) /
/// std` and `(1 - mean) / std` per channel.
fn box_bounds(x: &Tensor) -> Result<(Tensor, Tensor)> {
    if x.size()[1] != 3 {
        return Err(Error::shape(
            "lrp (epsilon-gamma-box)",
            "[N, 3, H, W] images normalised with SqueezeNet's mean and std (the box rule's bounds)",
            format!("{:?}", x.size()),
        ));
    }
    let bound = |v: f32| -> Vec<f32> {
        SQUEEZENET_MEAN
            .iter()
            .zip(SQUEEZENET_STD)
            .map(|(m, s)| (v - m) / s)
            .collect()
    };
    let t = |v: Vec<f32>| {
        Tensor::from_slice(&v)
            .view([1, 3, 1, 1])
            .to_device(x.device())
    };
    Ok((t(bound(0.0)), t(bound(1.0))))
}

/// Zennit's stabiliser: `z + sign(z) * eps`, with `sign(0) = 1`.
fn stabilize(z: &Tensor, eps: f64) -> Tensor {
    let sign = z.eq(0.0).to_kind(z.kind()) + z.sign();
    z + sign * eps
}

/// A convolution or a fully connected layer, as the rules use it: its
/// output for other parameters, and the gradient at its input.
enum Weighted<'a> {
    Conv(&'a ConvParams),
    Linear,
}

impl Weighted<'_> {
    fn apply(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        match self {
            Weighted::Conv(c) => c.apply_with(x, w, b),
            Weighted::Linear => x.linear(w, b),
        }
    }

    fn input_gradient(&self, g: &Tensor, w: &Tensor, input: &[i64]) -> Tensor {
        match self {
            Weighted::Conv(c) => c.input_gradient_with(g, w, input),
            Weighted::Linear => g.matmul(w),
        }
    }
}

/// The rules of one [`Lrp`], with the box rule's bounds.
struct LrpRules<'a> {
    lrp: &'a Lrp,
    bounds: Option<(Tensor, Tensor)>,
}

impl LrpRules<'_> {
    /// A convolution's or fully connected layer's rule.
    fn weighted(
        &self,
        op: &Recorded,
        layer: &Weighted,
        w: &Tensor,
        b: Option<&Tensor>,
        r: &Tensor,
    ) -> Tensor {
        let x = &op.input;
        let size = x.size();
        let eps = self.lrp.stabilizer;
        let grad = |s: &Tensor, w: &Tensor| layer.input_gradient(s, w, &size);
        let (pos, neg) = (|t: &Tensor| t.clamp_min(0.0), |t: &Tensor| t.clamp_max(0.0));
        // After a ReLU an input has no negative part: its terms are zero.
        let has_negative = x.min().double_value(&[]) < 0.0;
        let rule = self.lrp.rule.at(op.op.kind(), op.first);
        match rule {
            Layer::Epsilon => {
                let s = r / stabilize(&op.output, self.lrp.epsilon);
                x * grad(&s, w)
            }
            Layer::ZPlus | Layer::AlphaBeta | Layer::Gamma => {
                // The part that speaks for the output ("up": positive
                // weights on positive inputs, negative on negative ones)
                // and the part against ("down"), each with its weights for
                // the positive inputs and bias, and its weights for the
                // negative inputs (no bias). Each part's terms in Zennit's
                // order: x+ first, then x-.
                let gamma = self.lrp.gamma;
                let (up, down): (Modifier, Modifier) = if rule == Layer::Gamma {
                    (
                        |t, g| t + t.clamp_min(0.0) * g,
                        |t, g| t + t.clamp_max(0.0) * g,
                    )
                } else {
                    (|t, _| t.clamp_min(0.0), |t, _| t.clamp_max(0.0))
                };
                let (w_up, w_down) = (up(w, gamma), down(w, gamma));
                let (b_up, b_down) = (b.map(|b| up(b, gamma)), b.map(|b| down(b, gamma)));
                let (xp, xn) = (pos(x), neg(x));
                let terms =
                    |wp: &Tensor, bp: Option<&Tensor>, wn: &Tensor, mask: Option<Tensor>| {
                        let mut z = layer.apply(&xp, wp, bp);
                        if has_negative {
                            z += layer.apply(&xn, wn, None);
                        }
                        let s = match mask {
                            Some(m) => (m * r) / stabilize(&z, eps),
                            None => r / stabilize(&z, eps),
                        };
                        let mut t = vec![&xp * grad(&s, wp)];
                        if has_negative {
                            t.push(&xn * grad(&s, wn));
                        }
                        t
                    };
                let sum = |t: Vec<Tensor>| t.into_iter().reduce(|a, b| a + b).expect("a term");
                match rule {
                    Layer::ZPlus => sum(terms(&w_up, b_up.as_ref(), &w_down, None)),
                    Layer::AlphaBeta => {
                        let pro = sum(terms(&w_up, b_up.as_ref(), &w_down, None));
                        let con = sum(terms(&w_down, b_down.as_ref(), &w_up, None));
                        pro * 2.0 - con
                    }
                    _ => {
                        let z = &op.output;
                        let (above, below) =
                            (z.gt(0.0).to_kind(z.kind()), z.lt(0.0).to_kind(z.kind()));
                        let mut t = terms(&w_up, b_up.as_ref(), &w_down, Some(above));
                        t.extend(terms(&w_down, b_down.as_ref(), &w_up, Some(below)));
                        sum(t)
                    }
                }
            }
            Layer::Flat => {
                let ones = w.ones_like();
                let z = layer.apply(&x.ones_like(), &ones, None);
                grad(&(r / stabilize(&z, eps)), &ones)
            }
            Layer::ZBox => {
                let (low, high) = self.bounds.as_ref().expect("the box rule's bounds");
                let (low, high) = (low.expand_as(x), high.expand_as(x));
                let (wp, wn) = (pos(w), neg(w));
                let (bp, bn) = (b.map(pos), b.map(neg));
                let z = &op.output
                    - (layer.apply(&low, &wp, bp.as_ref()) + layer.apply(&high, &wn, bn.as_ref()));
                let s = r / stabilize(&z, eps);
                x * grad(&s, w) - (&low * grad(&s, &wp) + &high * grad(&s, &wn))
            }
        }
    }
}

impl Rules for LrpRules<'_> {
    fn replaces(&self, kind: OpKind) -> bool {
        kind != OpKind::MaxPool
    }

    fn backward(&self, op: &Recorded, r: &Tensor) -> Result<Tensor> {
        Ok(match &op.op {
            Op::Conv(c) => self.weighted(op, &Weighted::Conv(c), &c.w, c.b.as_ref(), r),
            Op::Linear { w, b } => self.weighted(op, &Weighted::Linear, w, b.as_ref(), r),
            // Zennit's Pass: the relevance goes through.
            Op::Relu => r.shallow_clone(),
            // Zennit's Norm: shared in proportion to the inputs.
            Op::AvgPool => {
                let s = r / stabilize(&op.output, self.lrp.stabilizer);
                &op.input * op.gradient(&s)
            }
            Op::MaxPool { .. } => op.gradient(r),
        })
    }
}
