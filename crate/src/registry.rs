//! The crate's methods by name: one list for the library ([`by_name`]), the
//! `maps` command line (which derives its `--method` from [`MethodName`],
//! clap's `ValueEnum` behind the `cli` feature) and the notebooks.
//!
//! | name | what it builds |
//! | --- | --- |
//! | `vanilla`, `input-x-gradient`, `integrated-gradients`, `guided-backprop`, `deconvolution`, `grad-cam`, `guided-grad-cam`, `occlusion`, `deeplift`, `deeplift-shap`, `gradient-shap`, `lrp` | that [`Method`] |
//! | `smoothgrad`, `smoothgrad-sq`, `vargrad` | the [`NoiseTunnel`](crate::attribution::NoiseTunnel) over the vanilla gradient, with that estimator (the `noise-tunnel` feature) |
//! | `blur-average` | the lab's blur average (not a [`Method`]: [`Built::BlurAverage`]) |
//! | `random`, `centre`, `edges` | the controls of [`crate::evaluation`], which do not look at the model |

use crate::attribution::{
    self, Baseline, Deconvolution, DeepLift, DeepLiftShap, GradCam, GradientShap, GuidedBackprop,
    GuidedGradCam, InputXGradient, IntegratedGradients, Lrp, LrpRule, Method, Occlusion, Rule,
    Vanilla,
};
use crate::error::{Error, Result};
use crate::evaluation::{CentreGaussian, Edges, RandomMap};

/// A method's name (its command-line spelling is [`MethodName::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum MethodName {
    /// The gradient of the target score (Simonyan et al. 2014).
    Vanilla,
    /// The input times the gradient (Shrikumar et al. 2016).
    InputXGradient,
    /// Integrated Gradients (Sundararajan et al. 2017): --steps, --baseline, --ig-rule.
    IntegratedGradients,
    /// Guided Backprop (Springenberg et al. 2015).
    GuidedBackprop,
    /// Deconvolution (Zeiler and Fergus 2014): ReLUs pass back the positive gradient.
    Deconvolution,
    /// Grad-CAM at --layer (Selvaraju et al. 2017), [N, 1, 224, 224].
    GradCam,
    /// Guided Backprop times Grad-CAM at --layer.
    GuidedGradCam,
    /// Occlusion (Zeiler and Fergus 2014): --window, --stride, --occlusion-baseline.
    Occlusion,
    /// DeepLift, the Rescale rule (Shrikumar et al. 2017): --baseline.
    #[cfg_attr(feature = "cli", value(name = "deeplift"))]
    DeepLift,
    /// DeepLift averaged over the baselines zeros, black and the image blurred (DeepLiftShap).
    #[cfg_attr(feature = "cli", value(name = "deeplift-shap"))]
    DeepLiftShap,
    /// GradientShap (Lundberg and Lee 2017) over those baselines: --samples, --stdev, --seed.
    GradientShap,
    /// Layer-wise Relevance Propagation (Bach et al. 2015): --rule, --epsilon, --gamma.
    Lrp,
    /// The mean gradient over noisy copies (Smilkov et al. 2017).
    Smoothgrad,
    /// The mean squared gradient over noisy copies (SG-SQ).
    SmoothgradSq,
    /// The variance of the gradient over noisy copies (VarGrad).
    Vargrad,
    /// The lab's sample answer: the mean over the image and blurred copies
    /// (sigma 1, 3, 9, 27); max.npy / maxabs.npy average the copies' maps.
    BlurAverage,
    /// Control: uniform random values (seeded by --seed), [N, 1, 224, 224].
    Random,
    /// Control: a Gaussian bump at the centre, [N, 1, 224, 224].
    Centre,
    /// Control: the Sobel edge magnitude of the image, [N, 1, 224, 224].
    Edges,
}

/// The attribution methods' names, in the order of
/// [`attribution`]'s table (each a [`Method`] with the paper's defaults from
/// [`by_name`]).
pub const METHODS: [&str; 15] = [
    "vanilla",
    "input-x-gradient",
    "integrated-gradients",
    "guided-backprop",
    "deconvolution",
    "grad-cam",
    "guided-grad-cam",
    "occlusion",
    "deeplift",
    "deeplift-shap",
    "gradient-shap",
    "lrp",
    "smoothgrad",
    "smoothgrad-sq",
    "vargrad",
];

impl MethodName {
    /// Every name, the attribution methods first.
    pub const ALL: [MethodName; 19] = [
        MethodName::Vanilla,
        MethodName::InputXGradient,
        MethodName::IntegratedGradients,
        MethodName::GuidedBackprop,
        MethodName::Deconvolution,
        MethodName::GradCam,
        MethodName::GuidedGradCam,
        MethodName::Occlusion,
        MethodName::DeepLift,
        MethodName::DeepLiftShap,
        MethodName::GradientShap,
        MethodName::Lrp,
        MethodName::Smoothgrad,
        MethodName::SmoothgradSq,
        MethodName::Vargrad,
        MethodName::BlurAverage,
        MethodName::Random,
        MethodName::Centre,
        MethodName::Edges,
    ];

    /// The command line's spelling (`integrated-gradients`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            MethodName::Vanilla => "vanilla",
            MethodName::InputXGradient => "input-x-gradient",
            MethodName::IntegratedGradients => "integrated-gradients",
            MethodName::GuidedBackprop => "guided-backprop",
            MethodName::Deconvolution => "deconvolution",
            MethodName::GradCam => "grad-cam",
            MethodName::GuidedGradCam => "guided-grad-cam",
            MethodName::Occlusion => "occlusion",
            MethodName::DeepLift => "deeplift",
            MethodName::DeepLiftShap => "deeplift-shap",
            MethodName::GradientShap => "gradient-shap",
            MethodName::Lrp => "lrp",
            MethodName::Smoothgrad => "smoothgrad",
            MethodName::SmoothgradSq => "smoothgrad-sq",
            MethodName::Vargrad => "vargrad",
            MethodName::BlurAverage => "blur-average",
            MethodName::Random => "random",
            MethodName::Centre => "centre",
            MethodName::Edges => "edges",
        }
    }

    /// The method called `name`.
    ///
    /// # Errors
    /// [`Error::Parameter`] for another name, listing the names.
    pub fn parse(name: &str) -> Result<MethodName> {
        MethodName::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = MethodName::ALL.iter().map(|m| m.name()).collect();
                Error::parameter(
                    "registry",
                    "method",
                    name,
                    format!("expected one of {}", names.join(", ")),
                )
            })
    }

    /// The method with `params` (those it uses; the rest are ignored).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for the noise tunnel in a build without the
    /// `noise-tunnel` feature.
    pub fn build(self, params: &Params) -> Result<Built> {
        let method: Box<dyn Method> = match self {
            MethodName::Vanilla => Box::new(Vanilla),
            MethodName::InputXGradient => Box::new(InputXGradient),
            MethodName::IntegratedGradients => Box::new(
                IntegratedGradients::default()
                    .with_steps(params.steps)
                    .with_batch_size(params.batch)
                    .with_rule(params.ig_rule)
                    .with_baseline(params.baseline()),
            ),
            MethodName::GuidedBackprop => Box::new(GuidedBackprop),
            MethodName::Deconvolution => Box::new(Deconvolution),
            MethodName::GradCam => Box::new(GradCam::default().with_layer(params.layer.clone())),
            MethodName::GuidedGradCam => {
                Box::new(GuidedGradCam::default().with_layer(params.layer.clone()))
            }
            MethodName::Occlusion => Box::new(
                Occlusion::default()
                    .with_window(params.window)
                    .with_stride(params.stride)
                    .with_baseline(params.occlusion_baseline)
                    .with_batch_size(params.batch),
            ),
            MethodName::DeepLift => Box::new(DeepLift::default().with_baseline(params.baseline())),
            MethodName::DeepLiftShap => Box::new(DeepLiftShap::default()),
            MethodName::GradientShap => Box::new(
                GradientShap::new()
                    .with_samples(params.samples)
                    .with_stdev(params.stdev)
                    .with_seed(params.seed)
                    .with_batch_size(params.batch),
            ),
            MethodName::Lrp => Box::new(
                Lrp::new(params.rule)
                    .with_epsilon(params.epsilon)
                    .with_gamma(params.gamma),
            ),
            MethodName::Smoothgrad | MethodName::SmoothgradSq | MethodName::Vargrad => {
                self.tunnel(params)?
            }
            MethodName::BlurAverage => return Ok(Built::BlurAverage),
            MethodName::Random => Box::new(RandomMap { seed: params.seed }),
            MethodName::Centre => Box::new(CentreGaussian::default()),
            MethodName::Edges => Box::new(Edges),
        };
        Ok(Built::Method(method))
    }

    #[cfg(feature = "noise-tunnel")]
    fn tunnel(self, params: &Params) -> Result<Box<dyn Method>> {
        use attribution::{Estimator, NoiseTunnel};
        let estimator = match self {
            MethodName::SmoothgradSq => Estimator::SmoothGradSq,
            MethodName::Vargrad => Estimator::VarGrad,
            _ => Estimator::SmoothGrad,
        };
        Ok(Box::new(
            NoiseTunnel::new(Vanilla, params.tunnel_config()).with_estimator(estimator),
        ))
    }

    #[cfg(not(feature = "noise-tunnel"))]
    fn tunnel(self, _params: &Params) -> Result<Box<dyn Method>> {
        Err(Error::Unsupported {
            op: "registry",
            needs: format!(
                "`{}` is the noise tunnel, which this build of the crate is without (the \
                 `noise-tunnel` feature: a homework graded without it)",
                self.name()
            ),
        })
    }
}

/// What [`MethodName::build`] makes.
pub enum Built {
    /// An attribution method.
    Method(Box<dyn Method>),
    /// The lab's blur average ([`attribution::blur_average()`]), which takes
    /// an image rather than a batch.
    BlurAverage,
}

/// Where Integrated Gradients' path starts (DeepLift's reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum BaselineChoice {
    /// Zeros of the preprocessed tensor (the mean colour).
    #[default]
    Zeros,
    /// A black image.
    Black,
    /// The image blurred (Gaussian, `blur_sigma`).
    Blur,
}

/// The methods' parameters, each used by the methods its documentation
/// names; the defaults are the papers' (and the command line's).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct Params {
    /// Noisy samples per image (SmoothGrad family, --tunnel, gradient-shap).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().samples))]
    pub samples: usize,
    /// Noise standard deviation as a fraction of each image's range.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().noise))]
    pub noise: f64,
    /// Seed of the noise (and of the random control, and of model randomisation).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().seed))]
    pub seed: u64,
    /// Copies per forward/backward pass: noisy samples, Integrated
    /// Gradients' path points, occluded images (bounds memory).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().batch))]
    pub batch: usize,
    /// Integrated Gradients: steps along the path.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().steps))]
    pub steps: usize,
    /// Integrated Gradients, DeepLift: where the path starts (the reference input).
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = Params::default().baseline))]
    pub baseline: BaselineChoice,
    /// Integrated Gradients: the blur of `--baseline blur`, in pixels.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().blur_sigma))]
    pub blur_sigma: f64,
    /// Integrated Gradients: the quadrature rule.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = Params::default().ig_rule))]
    pub ig_rule: Rule,
    /// Grad-CAM, Guided Grad-CAM: the layer (SqueezeNet: features.0 ... features.12).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().layer))]
    pub layer: String,
    /// Occlusion: the window's side in pixels.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().window))]
    pub window: i64,
    /// Occlusion: the step between windows.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().stride))]
    pub stride: i64,
    /// Occlusion: the value of occluded pixels (preprocessed units; 0 is the mean colour).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().occlusion_baseline))]
    pub occlusion_baseline: f64,
    /// GradientShap: the noise's standard deviation (preprocessed units; Captum's `stdevs`).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().stdev))]
    pub stdev: f64,
    /// LRP: the rule, or Zennit's composite of that name.
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = Params::default().rule))]
    pub rule: LrpRule,
    /// LRP: the epsilon rule's epsilon.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().epsilon))]
    pub epsilon: f64,
    /// LRP: the gamma rule's gamma.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = Params::default().gamma))]
    pub gamma: f64,
}

impl Default for Params {
    fn default() -> Self {
        let ig = IntegratedGradients::default();
        let occlusion = Occlusion::default();
        let lrp = Lrp::default();
        Params {
            samples: 50,
            noise: 0.15,
            seed: 0,
            batch: 10,
            steps: ig.steps,
            baseline: BaselineChoice::Zeros,
            blur_sigma: 10.0,
            ig_rule: ig.rule,
            layer: attribution::grad_cam::DEFAULT_LAYER.into(),
            window: occlusion.window,
            stride: occlusion.stride,
            occlusion_baseline: occlusion.baseline,
            stdev: 0.0,
            rule: LrpRule::default(),
            epsilon: lrp.epsilon,
            gamma: lrp.gamma,
        }
    }
}

impl Params {
    /// Integrated Gradients' and DeepLift's baseline from these parameters.
    #[must_use]
    pub fn baseline(&self) -> Baseline {
        match self.baseline {
            BaselineChoice::Zeros => Baseline::Zeros,
            BaselineChoice::Black => Baseline::Black,
            BaselineChoice::Blur => Baseline::Blur(self.blur_sigma),
        }
    }

    /// The noise tunnel's config from these parameters.
    #[cfg(feature = "noise-tunnel")]
    #[must_use]
    pub fn tunnel_config(&self) -> attribution::TunnelConfig {
        attribution::TunnelConfig::default()
            .with_noise_level(self.noise)
            .with_samples(self.samples)
            .with_seed(self.seed)
            .with_batch_size(self.batch)
    }
}

/// The attribution method called `name` (one of [`METHODS`]) with its
/// paper's defaults; `smoothgrad`, `smoothgrad-sq` and `vargrad` are the
/// noise tunnel over the vanilla gradient.
///
/// # Errors
/// [`Error::Parameter`] for another name, listing the names;
/// [`Error::Unsupported`] for the noise tunnel in a build without it.
pub fn by_name(name: &str) -> Result<Box<dyn Method>> {
    let not_a_method = || {
        Error::parameter(
            "registry::by_name",
            "method",
            name,
            format!("expected one of {}", METHODS.join(", ")),
        )
    };
    if !METHODS.contains(&name) {
        return Err(not_a_method());
    }
    match MethodName::parse(name)?.build(&Params::default())? {
        Built::Method(m) => Ok(m),
        Built::BlurAverage => Err(not_a_method()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_the_method_of_that_name() {
        for m in MethodName::ALL {
            assert_eq!(MethodName::parse(m.name()).unwrap(), m);
            match m.build(&Params::default()).unwrap() {
                Built::Method(method) => assert_eq!(method.name(), m.name()),
                Built::BlurAverage => assert_eq!(m, MethodName::BlurAverage),
            }
        }
        for name in METHODS {
            assert_eq!(by_name(name).unwrap().name(), name);
        }
        let msg = by_name("blur-average").err().unwrap().to_string();
        assert!(msg.contains("vanilla, input-x-gradient"), "{msg}");
        let msg = MethodName::parse("saliency").unwrap_err().to_string();
        assert!(msg.contains("saliency") && msg.contains("edges"), "{msg}");
    }

    #[test]
    fn the_defaults_are_the_methods_own() {
        let ig = IntegratedGradients::default();
        let p = Params::default();
        assert_eq!(
            (p.steps, p.ig_rule, p.batch),
            (ig.steps, ig.rule, ig.batch_size)
        );
        #[cfg(feature = "noise-tunnel")]
        assert_eq!(p.tunnel_config(), attribution::TunnelConfig::default());
    }
}
