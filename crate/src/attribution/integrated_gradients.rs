//! Integrated Gradients (Sundararajan, Taly and Yan, "Axiomatic Attribution
//! for Deep Networks", ICML 2017): the input's difference from a baseline
//! times the gradient averaged along the straight path from the baseline to
//! the input,
//!
//! `IG(x) = (x - b) * integral_0^1 grad F(b + a (x - b)) da`,
//!
//! the integral taken by a quadrature rule with `steps` nodes. Its sum over
//! the pixels approaches `F(x) - F(b)` (completeness) as the steps grow.
//! Captum: `IntegratedGradients(model).attribute(x, baselines=b, target=y,
//! n_steps=steps, method=rule)`, with the same nodes and weights.

use tch::{Device, Kind, Tensor};

use super::{copies_gradient, Attributions, Batch, Method};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::transforms::{blur_batch, SQUEEZENET_MEAN, SQUEEZENET_STD};

/// The quadrature rule along the path (Captum's `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Rule {
    /// Gauss-Legendre nodes and weights (Captum's default, `gausslegendre`).
    #[default]
    #[cfg_attr(feature = "cli", value(name = "gausslegendre"))]
    GaussLegendre,
    /// Left Riemann sum: nodes `0, 1/n, ..., 1 - 1/n` (`riemann_left`).
    RiemannLeft,
    /// Right Riemann sum: nodes `1/n, ..., 1` (`riemann_right`).
    RiemannRight,
    /// Midpoint sum: nodes `1/(2n), ..., 1 - 1/(2n)` (`riemann_middle`).
    RiemannMiddle,
    /// Trapezoid rule: nodes `0, ..., 1`, half weight at the ends
    /// (`riemann_trapezoid`).
    RiemannTrapezoid,
}

impl Rule {
    /// The nodes `a_k` in `[0, 1]` and weights `w_k` of `n` steps, as Captum
    /// computes them (`approximation_methods.py`): Gauss-Legendre's from
    /// `numpy.polynomial.legendre.leggauss` rescaled to `[0, 1]`, Riemann
    /// nodes from `torch.linspace` in single precision.
    ///
    /// # Errors
    /// [`Error::Parameter`] for `n` = 0, or `n` = 1 with a Riemann rule
    /// (Captum asks for at least two).
    pub fn nodes(self, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let min = if self == Rule::GaussLegendre { 1 } else { 2 };
        if n < min {
            return Err(Error::parameter(
                "IntegratedGradients",
                "steps",
                n,
                format!("must be at least {min} for {self:?}"),
            ));
        }
        if self == Rule::GaussLegendre {
            let (x, w) = gauss_legendre(n);
            return Ok((
                x.iter().map(|x| 0.5 * (1.0 + x)).collect(),
                w.iter().map(|w| 0.5 * w).collect(),
            ));
        }
        let nf = n as f64;
        let (start, end) = match self {
            Rule::RiemannLeft => (0.0, 1.0 - 1.0 / nf),
            Rule::RiemannRight => (1.0 / nf, 1.0),
            Rule::RiemannMiddle => (1.0 / (2.0 * nf), 1.0 - 1.0 / (2.0 * nf)),
            _ => (0.0, 1.0),
        };
        let alphas = Tensor::linspace(start, end, n as i64, (Kind::Float, Device::Cpu));
        let alphas: Vec<f32> = Vec::try_from(alphas)?;
        let mut weights = vec![1.0 / nf; n];
        if self == Rule::RiemannTrapezoid {
            weights[0] /= 2.0;
            weights[n - 1] /= 2.0;
        }
        Ok((alphas.into_iter().map(f64::from).collect(), weights))
    }

    /// The name Captum gives the rule.
    #[must_use]
    pub fn captum_name(self) -> &'static str {
        match self {
            Rule::GaussLegendre => "gausslegendre",
            Rule::RiemannLeft => "riemann_left",
            Rule::RiemannRight => "riemann_right",
            Rule::RiemannMiddle => "riemann_middle",
            Rule::RiemannTrapezoid => "riemann_trapezoid",
        }
    }
}

/// The `n`-point Gauss-Legendre rule on `[-1, 1]`: nodes in ascending order
/// and weights, by Newton's method on the Legendre polynomial (to full double
/// precision, as numpy's `leggauss`).
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut x, mut w) = (vec![0.0; n], vec![0.0; n]);
    // P_n(z) and its derivative, by the three-term recurrence.
    let legendre = |z: f64| {
        let (mut p1, mut p2) = (1.0, 0.0);
        for j in 0..n {
            let p3 = p2;
            p2 = p1;
            p1 = ((2 * j + 1) as f64 * z * p2 - j as f64 * p3) / (j + 1) as f64;
        }
        (p1, n as f64 * (z * p1 - p2) / (z * z - 1.0))
    };
    for i in 0..n.div_ceil(2) {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        for _ in 0..100 {
            let (p, dp) = legendre(z);
            let step = p / dp;
            z -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        let (_, dp) = legendre(z);
        let weight = 2.0 / ((1.0 - z * z) * dp * dp);
        x[i] = -z;
        x[n - 1 - i] = z;
        w[i] = weight;
        w[n - 1 - i] = weight;
    }
    if n % 2 == 1 {
        x[n / 2] = 0.0;
    }
    (x, w)
}

/// Where the path starts (Integrated Gradients), the reference input
/// (DeepLift).
#[derive(Debug, Default)]
pub enum Baseline {
    /// Zeros of the preprocessed tensor: the dataset's mean colour (Captum's
    /// default).
    #[default]
    Zeros,
    /// A black image, preprocessed: `(0 - mean) / std` per channel (needs
    /// three channels normalised with SqueezeNet's mean and std).
    Black,
    /// The image blurred (Gaussian, this sigma in pixels, scipy's
    /// `gaussian_filter1d` along height and width of the preprocessed
    /// tensor): a baseline with the image's colours but not its detail
    /// (Sturmfels, Lundberg and Lee, "Visualizing the Impact of Feature
    /// Attribution Baselines", Distill 2020).
    Blur(f64),
    /// A tensor of your own, preprocessed: `[N, C, H, W]` (one per image) or
    /// `[1, C, H, W]`, `[C, H, W]` (the same for every image).
    Given(Tensor),
}

impl Clone for Baseline {
    fn clone(&self) -> Self {
        match self {
            Baseline::Zeros => Baseline::Zeros,
            Baseline::Black => Baseline::Black,
            Baseline::Blur(s) => Baseline::Blur(*s),
            Baseline::Given(t) => Baseline::Given(t.shallow_clone()),
        }
    }
}

impl PartialEq for Baseline {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Baseline::Zeros, Baseline::Zeros) | (Baseline::Black, Baseline::Black) => true,
            (Baseline::Blur(a), Baseline::Blur(b)) => a == b,
            (Baseline::Given(a), Baseline::Given(b)) => a.size() == b.size() && a.equal(b),
            _ => false,
        }
    }
}

impl Baseline {
    /// Checks the baseline's parameter: a blur's sigma positive and finite,
    /// a tensor's values finite.
    ///
    /// # Errors
    /// [`Error::Parameter`] naming `op` and what is wrong.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        match self {
            Baseline::Blur(sigma) if !(sigma.is_finite() && *sigma > 0.0) => Err(Error::parameter(
                op,
                "baseline blur sigma",
                sigma,
                "must be positive and finite",
            )),
            Baseline::Given(t) => crate::support::check_finite(op, t),
            _ => Ok(()),
        }
    }

    /// The baseline for a preprocessed batch `x` `[N, C, H, W]`.
    ///
    /// # Errors
    /// [`Error::Shape`] for [`Baseline::Black`] on an input without three
    /// channels or a tensor that is not the input's shape, [`Error::Parameter`]
    /// for a blur sigma that is not positive and finite.
    pub fn of(&self, x: &Tensor) -> Result<Tensor> {
        match *self {
            Baseline::Zeros => Ok(x.zeros_like()),
            Baseline::Black => {
                if x.size()[1] != 3 {
                    return Err(Error::shape(
                        "Baseline::Black",
                        "3 channels (RGB, preprocessed)",
                        format!("{:?}", x.size()),
                    ));
                }
                let black: Vec<f32> = SQUEEZENET_MEAN
                    .iter()
                    .zip(SQUEEZENET_STD)
                    .map(|(m, s)| -m / s)
                    .collect();
                Ok(Tensor::from_slice(&black)
                    .view([1, 3, 1, 1])
                    .to_device(x.device())
                    .expand_as(x)
                    .contiguous())
            }
            Baseline::Blur(sigma) => blur_batch(x, sigma),
            Baseline::Given(ref t) => {
                let (ts, xs) = (t.size(), x.size());
                let one = if ts.len() + 1 == xs.len() {
                    t.unsqueeze(0)
                } else {
                    t.shallow_clone()
                };
                let os = one.size();
                if os.len() != xs.len() || os[1..] != xs[1..] || !(os[0] == 1 || os[0] == xs[0]) {
                    return Err(Error::shape(
                        "Baseline::Given",
                        format!("{xs:?}, [1, ...] or {:?} (the input's shape)", &xs[1..]),
                        format!("{ts:?}"),
                    ));
                }
                Ok(one
                    .to_device(x.device())
                    .to_kind(x.kind())
                    .expand_as(x)
                    .contiguous())
            }
        }
    }
}

/// Integrated Gradients' parameters, with Captum's defaults.
///
/// The path's points are copies of one image: on a [`Model`](crate::Model)
/// from [`squeezenet1_1`](crate::squeezenet1_1) they run on its fast path,
/// NHWC on the CPU, about 1.8 times faster and within about 1e-3 (relative
/// L2) of Captum on images with flat regions, where max-pooling may route the
/// gradient through another, equally valid, position; with
/// [`Numerics::PyTorch`](crate::model::Numerics) they take PyTorch's route,
/// equal to Captum to 1e-7 (see [`Numerics`](crate::model::Numerics)).
#[derive(Debug, Clone, PartialEq)]
pub struct IntegratedGradients {
    /// Quadrature nodes along the path. Default 50 (Captum's `n_steps`).
    pub steps: usize,
    /// The quadrature rule. Default Gauss-Legendre.
    pub rule: Rule,
    /// Where the path starts. Default zeros.
    pub baseline: Baseline,
    /// How many points of the path go through the network at once (bounds
    /// memory; Captum's `internal_batch_size`). Default 10.
    pub batch_size: usize,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        IntegratedGradients {
            steps: 50,
            rule: Rule::GaussLegendre,
            baseline: Baseline::Zeros,
            batch_size: 10,
        }
    }
}

impl IntegratedGradients {
    /// Sets the number of steps.
    #[must_use]
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// Sets the quadrature rule.
    #[must_use]
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rule = rule;
        self
    }

    /// Sets the baseline.
    #[must_use]
    pub fn with_baseline(mut self, baseline: Baseline) -> Self {
        self.baseline = baseline;
        self
    }

    /// Sets the batch size.
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
}

impl IntegratedGradients {
    /// `sum(map) - (f(x) - f(b))` per image `[N]` (double), `f` the
    /// target's score, `b` this baseline: Captum's
    /// `compute_convergence_delta`, which shrinks as the steps grow.
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
        super::completeness_delta(net, x, &self.baseline.of(x)?, targets, maps)
    }
}

impl Method for IntegratedGradients {
    fn name(&self) -> String {
        "integrated-gradients".into()
    }

    fn passes_per_image(&self) -> usize {
        self.steps
    }

    fn validate(&self) -> Result<()> {
        self.rule.nodes(self.steps)?;
        if self.batch_size == 0 {
            return Err(Error::parameter(
                "IntegratedGradients",
                "batch_size",
                0,
                "must be at least 1",
            ));
        }
        self.baseline.validate("IntegratedGradients")
    }

    fn op(&self) -> &'static str {
        "integrated_gradients"
    }

    fn attribute_batch(&self, net: &dyn Network, batch: &Batch<'_>) -> Result<Attributions> {
        let (x, targets) = (batch.x(), batch.targets());
        let (alphas, weights) = self.rule.nodes(self.steps)?;
        let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
        let baseline = self.baseline.of(x)?;
        let mut out = Vec::with_capacity(targets.len());
        for (i, &target) in targets.iter().enumerate() {
            let (xi, bi) = (x.narrow(0, i as i64, 1), baseline.narrow(0, i as i64, 1));
            let diff = &xi - &bi;
            let mut total = xi.zeros_like();
            for start in (0..self.steps).step_by(self.batch_size) {
                let end = (start + self.batch_size).min(self.steps);
                // Captum's `baseline + alpha * (input - baseline)`, in single
                // precision with alpha rounded to it.
                let path: Vec<Tensor> = alphas[start..end]
                    .iter()
                    .map(|&a| &bi + &diff * a)
                    .collect();
                let grads = copies_gradient(net, &Tensor::cat(&path, 0), target)?;
                let w = Tensor::from_slice(&weights[start..end])
                    .to_device(x.device())
                    .view([-1, 1, 1, 1]);
                total += (grads * w).sum_dim_intlist(0, true, Kind::Float);
            }
            out.push(total * diff);
        }
        Ok(Attributions::checked(Tensor::cat(&out, 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_known_rules() {
        // Two points: +-1/sqrt(3), weights 1; three: 0, +-sqrt(3/5), 8/9 and 5/9.
        let (x, w) = gauss_legendre(2);
        assert!((x[1] - 1.0 / 3f64.sqrt()).abs() < 1e-15 && (x[0] + x[1]).abs() < 1e-15);
        assert!((w[0] - 1.0).abs() < 1e-14 && (w[1] - 1.0).abs() < 1e-14);
        let (x, w) = gauss_legendre(3);
        assert!(x[1].abs() < 1e-15 && (x[2] - 0.6f64.sqrt()).abs() < 1e-15);
        assert!((w[1] - 8.0 / 9.0).abs() < 1e-14 && (w[0] - 5.0 / 9.0).abs() < 1e-14);
        // 50 points integrate x^10 on [-1, 1] (= 2/11) exactly, and the weights sum to 2.
        let (x, w) = gauss_legendre(50);
        let integral: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(10)).sum();
        assert!((integral - 2.0 / 11.0).abs() < 1e-14, "{integral}");
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-13);
        assert!(x.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn riemann_nodes_are_captums() {
        let (a, w) = Rule::RiemannLeft.nodes(4).unwrap();
        assert_eq!(a, [0.0, 0.25, 0.5, 0.75]);
        assert_eq!(w, [0.25; 4]);
        let (a, w) = Rule::RiemannTrapezoid.nodes(3).unwrap();
        assert_eq!(a, [0.0, 0.5, 1.0]);
        assert_eq!(w, [1.0 / 6.0, 1.0 / 3.0, 1.0 / 6.0]);
        let (a, _) = Rule::RiemannMiddle.nodes(2).unwrap();
        assert_eq!(a, [0.25, 0.75]);
        assert!(Rule::RiemannRight.nodes(1).is_err());
        assert!(Rule::GaussLegendre.nodes(0).is_err());
    }

    #[test]
    fn completeness_on_a_linear_model() {
        // F(x) = sum(3 x): IG = (x - b) * 3 * (the weights' sum), which is 1
        // but for Captum's trapezoid rule: (n - 1) / n, its end weights halved
        // and not renormalised.
        let net = tch::nn::func_t(|xs, _| {
            (xs * 3.0)
                .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
                .unsqueeze(1)
        });
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25]).view([1, 1, 2, 2]);
        for (rule, sum) in [
            (Rule::GaussLegendre, 1.0),
            (Rule::RiemannTrapezoid, 6.0 / 7.0),
            (Rule::RiemannMiddle, 1.0),
        ] {
            let ig = IntegratedGradients::default().with_steps(7).with_rule(rule);
            let a = ig.attribute(&net, &x, &[0]).unwrap().values;
            let want = &x * (3.0 * sum);
            assert!((a - want).abs().max().double_value(&[]) < 1e-5, "{rule:?}");
        }
    }
}
