//! `maps`: attribution maps from the command line, without Jupyter.
//!
//! ```text
//! maps --npz imagenet_val_25.npz --method smoothgrad --samples 50 --out out/
//! maps --image cat.jpg dog.png --method integrated-gradients --steps 32 --out out/
//! maps --npz imagenet_val_25.npz --method grad-cam --layer features.9 --out out/
//! maps --npz imagenet_val_25.npz --method guided-backprop --tunnel smoothgrad --samples 20 --out out/
//! ```
//!
//! `maps evaluate` asks whether the maps can be trusted (see its `--help`):
//!
//! ```text
//! maps evaluate --npz imagenet_val_25.npz --method vanilla --metric deletion insertion randomisation --out eval/
//! ```
//!
//! Writes to `--out`: `attr.npy` (float32, the method's attribution `[N, 3,
//! 224, 224]`, `[N, 1, 224, 224]` for Grad-CAM), `max.npy` and `maxabs.npy`
//! (float32 `[N, 224, 224]`, its channel max and max of abs), `scores.npy`
//! (float32 `[N, 1000]`, the clean images' class scores), `targets.npy`
//! (int64 `[N]`), and for the gradient methods (vanilla, the SmoothGrad
//! family, the blur average) `grad.npy`, the same as `attr.npy`. Warnings about
//! maps that say nothing go to stderr, with a progress bar where stderr is a
//! terminal.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array4};
use saliency_lab::attribution::{
    self, Baseline, Estimator, GradCam, GuidedBackprop, GuidedGradCam, InputXGradient,
    IntegratedGradients, Method as _, NoiseTunnel, Occlusion, Rule, SmoothGradConfig, Vanilla,
};
use saliency_lab::convert::{write_npy, write_npy_f32};
use saliency_lab::evaluation::{
    aucs, CausalMetric, CentreGaussian, Edges, Order, RandomMap, Randomisation,
};
use saliency_lab::transforms::{stack_images, IMAGE_SIZE};
use saliency_lab::{assets, Error, Model, Result};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// The gradient of the target score (Simonyan et al. 2014).
    Vanilla,
    /// The input times the gradient (Shrikumar et al. 2016).
    InputXGradient,
    /// Integrated Gradients (Sundararajan et al. 2017): --steps, --baseline, --ig-rule.
    IntegratedGradients,
    /// Guided Backprop (Springenberg et al. 2015).
    GuidedBackprop,
    /// Grad-CAM at --layer (Selvaraju et al. 2017), [N, 1, 224, 224].
    GradCam,
    /// Guided Backprop times Grad-CAM at --layer.
    GuidedGradCam,
    /// Occlusion (Zeiler and Fergus 2014): --window, --stride, --occlusion-baseline.
    Occlusion,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Tunnel {
    /// The mean over noisy copies.
    Smoothgrad,
    /// The mean of the squares.
    SmoothgradSq,
    /// The variance.
    Vargrad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BaselineArg {
    /// Zeros of the preprocessed tensor (the mean colour).
    Zeros,
    /// A black image.
    Black,
    /// The image blurred (Gaussian, --blur-sigma).
    Blur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuleArg {
    Gausslegendre,
    RiemannLeft,
    RiemannRight,
    RiemannMiddle,
    RiemannTrapezoid,
}

/// The methods' parameters (each used by the methods its help names).
#[derive(Debug, ClapArgs)]
struct MethodArgs {
    /// Noisy samples per image (SmoothGrad family, --tunnel).
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Noise standard deviation as a fraction of each image's range.
    #[arg(long, default_value_t = 0.15)]
    noise: f64,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Copies per forward/backward pass: noisy samples, Integrated
    /// Gradients' path points, occluded images (bounds memory).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Integrated Gradients: steps along the path.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Integrated Gradients: where the path starts.
    #[arg(long, value_enum, default_value = "zeros")]
    baseline: BaselineArg,
    /// Integrated Gradients: the blur of `--baseline blur`, in pixels.
    #[arg(long, default_value_t = 10.0)]
    blur_sigma: f64,
    /// Integrated Gradients: the quadrature rule.
    #[arg(long, value_enum, default_value = "gausslegendre")]
    ig_rule: RuleArg,
    /// Grad-CAM, Guided Grad-CAM: the layer (SqueezeNet: features.0 ... features.12).
    #[arg(long, default_value = attribution::grad_cam::DEFAULT_LAYER)]
    layer: String,
    /// Occlusion: the window's side in pixels.
    #[arg(long, default_value_t = 15)]
    window: i64,
    /// Occlusion: the step between windows.
    #[arg(long, default_value_t = 8)]
    stride: i64,
    /// Occlusion: the value of occluded pixels (preprocessed units; 0 is the mean colour).
    #[arg(long, default_value_t = 0.0)]
    occlusion_baseline: f64,
}

/// Attribution maps of SqueezeNet 1.1 (vanilla gradient, Input x Gradient,
/// Integrated Gradients, Guided Backprop, Grad-CAM, Guided Grad-CAM,
/// Occlusion, SmoothGrad / SG-SQ / VarGrad over any of them, the lab's blur
/// average, and the controls: random, centre, edges), written as .npy files;
/// `maps evaluate` checks them (deletion, insertion, model randomisation).
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    maps: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Can the maps be trusted? Deletion and insertion (RISE: the
    /// probability of the class as the pixels the map ranks first are
    /// deleted from the image, or inserted into a blurred copy; 224 pixels a
    /// step, 225 scores) and model randomisation (Adebayo et al.: the maps
    /// again after each layer is re-initialised, from the classifier down,
    /// compared with the original by Spearman's rank correlation and SSIM).
    /// Writes maxabs.npy (the maps ranked), deletion.npy / insertion.npy
    /// (float32 [N, 225]), randomisation.csv and metrics.json, and prints a
    /// summary.
    Evaluate(EvaluateArgs),
}

/// The images, the model and the method (shared by `maps` and `maps evaluate`).
#[derive(Debug, ClapArgs)]
struct Common {
    /// An npz with `X` [N, H, W, 3] uint8, `y` [N] int64 and `label_map`
    /// (the lab's imagenet_val_25.npz).
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    npz: Option<PathBuf>,
    /// PNG or JPEG files (converted to RGB, shorter side resized to 224,
    /// centre-cropped to 224 x 224).
    #[arg(long, num_args = 1..)]
    image: Vec<PathBuf>,
    /// SqueezeNet 1.1 weights (safetensors, torchvision's names); default:
    /// the file set-up installed.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The attribution method.
    #[arg(long, value_enum, default_value = "vanilla")]
    method: Method,
    /// A noise tunnel over the method: each image's attribution averaged
    /// (or squared, or its variance taken) over noisy copies.
    #[arg(long, value_enum)]
    tunnel: Option<Tunnel>,
    #[command(flatten)]
    params: MethodArgs,
    /// Output folder (created if missing).
    #[arg(long, default_value = "maps-out")]
    out: PathBuf,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (default: a CUDA GPU when one is usable).
    #[arg(long)]
    device: Option<String>,
    /// Print the wall time and the peak resident memory (Linux) at the end.
    #[arg(long)]
    stats: bool,
}

#[derive(Debug, ClapArgs)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// The class to explain for every image; default: the label in the npz,
    /// else the top-1 class.
    #[arg(long)]
    target: Option<i64>,
    /// Also write `input.npy`, the preprocessed batch (float32 [N, 3, 224, 224]).
    #[arg(long)]
    save_input: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Metric {
    /// Pixels deleted in the map's order: the probability should fall fast (a small area).
    Deletion,
    /// Pixels inserted into a blurred copy in the map's order: it should rise fast (a large area).
    Insertion,
    /// The maps after each layer is re-initialised from the top: they should change.
    Randomisation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OrderArg {
    /// Layer after layer from the top, cumulatively.
    Cascading,
    /// One layer at a time.
    Independent,
}

#[derive(Debug, ClapArgs)]
struct EvaluateArgs {
    #[command(flatten)]
    common: Common,
    /// The metrics (one or more).
    #[arg(long, value_enum, num_args = 1.., default_value = "deletion")]
    metric: Vec<Metric>,
    /// The class each map explains and the metrics follow: `label` (the
    /// npz's labels; the default), `top1` (the model's prediction, RISE's
    /// choice; the default for image files), or a class number.
    #[arg(long)]
    target: Option<String>,
    /// Model randomisation: cascading (default) or independent.
    #[arg(long, value_enum, default_value = "cascading")]
    order: OrderArg,
    /// Deletion and insertion: pixels per step.
    #[arg(long, default_value_t = 224)]
    step: usize,
}

impl MethodArgs {
    fn smoothgrad(&self) -> SmoothGradConfig {
        SmoothGradConfig::default()
            .with_noise_level(self.noise)
            .with_samples(self.samples)
            .with_seed(self.seed)
            .with_batch_size(self.batch)
    }

    /// The method, with its flags, or `None` for the blur average.
    fn method(&self, method: Method) -> Option<Box<dyn attribution::Method>> {
        let tunnel = |e: Estimator| -> Box<dyn attribution::Method> {
            Box::new(NoiseTunnel::new(Vanilla, self.smoothgrad()).with_estimator(e))
        };
        Some(match method {
            Method::Vanilla => Box::new(Vanilla),
            Method::InputXGradient => Box::new(InputXGradient),
            Method::IntegratedGradients => Box::new(
                IntegratedGradients::default()
                    .with_steps(self.steps)
                    .with_batch_size(self.batch)
                    .with_rule(match self.ig_rule {
                        RuleArg::Gausslegendre => Rule::GaussLegendre,
                        RuleArg::RiemannLeft => Rule::RiemannLeft,
                        RuleArg::RiemannRight => Rule::RiemannRight,
                        RuleArg::RiemannMiddle => Rule::RiemannMiddle,
                        RuleArg::RiemannTrapezoid => Rule::RiemannTrapezoid,
                    })
                    .with_baseline(match self.baseline {
                        BaselineArg::Zeros => Baseline::Zeros,
                        BaselineArg::Black => Baseline::Black,
                        BaselineArg::Blur => Baseline::Blur(self.blur_sigma),
                    }),
            ),
            Method::GuidedBackprop => Box::new(GuidedBackprop),
            Method::GradCam => Box::new(GradCam::default().with_layer(self.layer.clone())),
            Method::GuidedGradCam => {
                Box::new(GuidedGradCam::default().with_layer(self.layer.clone()))
            }
            Method::Occlusion => Box::new(
                Occlusion::default()
                    .with_window(self.window)
                    .with_stride(self.stride)
                    .with_baseline(self.occlusion_baseline)
                    .with_batch_size(self.batch),
            ),
            Method::Smoothgrad => tunnel(Estimator::SmoothGrad),
            Method::SmoothgradSq => tunnel(Estimator::SmoothGradSq),
            Method::Vargrad => tunnel(Estimator::VarGrad),
            Method::Random => Box::new(RandomMap { seed: self.seed }),
            Method::Centre => Box::new(CentreGaussian::default()),
            Method::Edges => Box::new(Edges),
            Method::BlurAverage => return None,
        })
    }
}

/// The images and, from an npz, their labels.
fn load(args: &Common) -> Result<(Array4<u8>, Option<Vec<i64>>)> {
    Ok(match &args.npz {
        Some(npz) => {
            let data = saliency_lab::load_imagenet_val(npz)?;
            (data.images, Some(data.labels))
        }
        None => {
            let imgs = args
                .image
                .iter()
                .map(|p| saliency_lab::load_image_file(p, IMAGE_SIZE))
                .collect::<Result<Vec<_>>>()?;
            (stack_images(&imgs)?, None)
        }
    })
}

fn progress(n: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}, {elapsed} (ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("maps: {what}"));
    bar
}

/// What both commands start from: the model, the batch, its clean scores,
/// the labels (from an npz) and the method (`None`: the blur average).
struct Prepared {
    model: Model,
    images: Array4<u8>,
    x: Tensor,
    scores: Tensor,
    labels: Option<Vec<i64>>,
    method: Option<Box<dyn attribution::Method>>,
}

fn prepare(args: &Common) -> Result<Prepared> {
    let device = saliency_lab::device::parse_device(args.device.as_deref().unwrap_or("auto"))?;
    let mut method = args.params.method(args.method);
    if let Some(m) = &method {
        m.validate()?;
    }
    if let Some(t) = args.tunnel {
        let Some(inner) = method.take() else {
            return Err(Error::parameter(
                "maps",
                "--tunnel",
                "with --method blur-average",
                "the blur average is not an attribution method a tunnel can run",
            ));
        };
        let estimator = match t {
            Tunnel::Smoothgrad => Estimator::SmoothGrad,
            Tunnel::SmoothgradSq => Estimator::SmoothGradSq,
            Tunnel::Vargrad => Estimator::VarGrad,
        };
        let tunnel = NoiseTunnel::new(inner, args.params.smoothgrad()).with_estimator(estimator);
        tunnel.validate()?;
        method = Some(Box::new(tunnel));
    }
    let (images, labels) = load(args)?;
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => assets::weights_path()?,
    };
    let model = saliency_lab::squeezenet1_1(&weights, device)?;
    let x = saliency_lab::preprocess_batch(images.view())?.to_device(device);
    let scores = model.scores(&x)?;
    Ok(Prepared {
        model,
        images,
        x,
        scores,
        labels,
        method,
    })
}

fn run(args: &Args) -> Result<()> {
    let p = prepare(&args.common)?;
    let n = p.images.shape()[0];
    let targets = match (args.target, p.labels.clone()) {
        (Some(t), _) => vec![t; n],
        (None, Some(labels)) => labels,
        (None, None) => saliency_lab::top1(&p.scores)?,
    };
    let name = p
        .method
        .as_ref()
        .map_or_else(|| "blur-average".to_string(), |m| m.name());
    let attr = match &p.method {
        Some(m) => attribute(m.as_ref(), &p.model, &p.x, &targets, &name)?,
        None => blur_average(&p.model, &p.images, &targets)?,
    };
    let out = &args.common.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_npy_f32(out.join("attr.npy"), &attr.values)?;
    if attr.gradient {
        write_npy_f32(out.join("grad.npy"), &attr.values)?;
    }
    write_npy_f32(out.join("max.npy"), &attr.max)?;
    write_npy_f32(out.join("maxabs.npy"), &attr.maxabs)?;
    write_npy_f32(out.join("scores.npy"), &p.scores)?;
    write_npy(out.join("targets.npy"), &Array1::from(targets.clone()))?;
    if args.save_input {
        write_npy_f32(out.join("input.npy"), &p.x)?;
    }
    println!(
        "{name} maps of {} image(s) written to {}",
        targets.len(),
        out.display()
    );
    Ok(())
}

fn evaluate(args: &EvaluateArgs) -> Result<()> {
    let p = prepare(&args.common)?;
    let n = p.images.shape()[0];
    let Some(method) = &p.method else {
        return Err(Error::parameter(
            "maps evaluate",
            "--method",
            "blur-average",
            "the blur average is not an attribution method the metrics can run",
        ));
    };
    let (targets, target_name) = match (args.target.as_deref(), &p.labels) {
        (None | Some("label"), Some(labels)) => (labels.clone(), "label".to_string()),
        (Some("label"), None) => {
            return Err(Error::parameter(
                "maps evaluate",
                "--target",
                "label",
                "image files have no labels: use top1 or a class number",
            ))
        }
        (None | Some("top1"), _) => (saliency_lab::top1(&p.scores)?, "top1".to_string()),
        (Some(class), _) => {
            let t: i64 = class.parse().map_err(|_| {
                Error::parameter(
                    "maps evaluate",
                    "--target",
                    class,
                    "expected label, top1 or a class number",
                )
            })?;
            (vec![t; n], format!("class {t}"))
        }
    };
    let name = method.name();
    let out = &args.common.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let maps = attribute(method.as_ref(), &p.model, &p.x, &targets, &name)?.maxabs;
    write_npy_f32(out.join("maxabs.npy"), &maps)?;
    write_npy(out.join("targets.npy"), &Array1::from(targets.clone()))?;
    let mut report = Report::new(&name, &target_name, &targets);
    for metric in dedup(&args.metric) {
        match metric {
            Metric::Deletion | Metric::Insertion => {
                let (m, file) = if metric == Metric::Deletion {
                    (CausalMetric::deletion(), "deletion")
                } else {
                    (CausalMetric::insertion(), "insertion")
                };
                let m = m.with_step(args.step);
                let bar = progress(n, file);
                let mut curves = Vec::new();
                for i in 0..n as i64 {
                    curves.push(m.curves(
                        &p.model,
                        &p.x.narrow(0, i, 1),
                        &maps.narrow(0, i, 1),
                        &targets[i as usize..=i as usize],
                    )?);
                    bar.inc(1);
                }
                bar.finish_and_clear();
                let curves = Tensor::cat(&curves, 0);
                write_npy_f32(out.join(format!("{file}.npy")), &curves)?;
                report.aucs.push((file, aucs(&curves)?));
            }
            Metric::Randomisation => {
                let order = match args.order {
                    OrderArg::Cascading => Order::Cascading,
                    OrderArg::Independent => Order::Independent,
                };
                let layers = p.model.weight_layers().len();
                let bar = progress(layers, "randomisation (layers)");
                let r = Randomisation {
                    order,
                    seed: args.common.params.seed,
                }
                .run_with_progress(
                    &p.model,
                    method.as_ref(),
                    &p.x,
                    &targets,
                    &mut |_| bar.inc(1),
                )?;
                bar.finish_and_clear();
                let mut csv = String::from("image,layer,spearman_abs,spearman_signed,ssim\n");
                for (k, layer) in r.layers.iter().enumerate() {
                    for i in 0..n {
                        csv.push_str(&format!(
                            "{i},{layer},{:.6},{:.6},{:.6}\n",
                            r.spearman_abs[k][i], r.spearman_signed[k][i], r.ssim[k][i]
                        ));
                    }
                }
                let path = out.join("randomisation.csv");
                std::fs::write(&path, csv).map_err(|e| Error::io(&path, e))?;
                report.randomisation = Some(r);
            }
        }
    }
    let path = out.join("metrics.json");
    std::fs::write(&path, report.json()).map_err(|e| Error::io(&path, e))?;
    print!("{}", report.table());
    println!("written to {}", out.display());
    Ok(())
}

fn dedup(metrics: &[Metric]) -> Vec<Metric> {
    let mut out: Vec<Metric> = Vec::new();
    for &m in metrics {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// What `maps evaluate` found, as JSON and as a table.
struct Report {
    method: String,
    target: String,
    targets: Vec<i64>,
    aucs: Vec<(&'static str, Vec<f64>)>,
    randomisation: Option<saliency_lab::evaluation::RandomisationResult>,
}

fn mean(v: &[f64]) -> f64 {
    let ok: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    ok.iter().sum::<f64>() / ok.len().max(1) as f64
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        "null".into()
    }
}

impl Report {
    fn new(method: &str, target: &str, targets: &[i64]) -> Self {
        Report {
            method: method.into(),
            target: target.into(),
            targets: targets.to_vec(),
            aucs: Vec::new(),
            randomisation: None,
        }
    }

    fn json(&self) -> String {
        let list = |v: &[f64]| {
            format!(
                "[{}]",
                v.iter().map(|&x| num(x)).collect::<Vec<_>>().join(", ")
            )
        };
        let mut images = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let mut fields = vec![format!("\"index\": {i}"), format!("\"class\": {t}")];
            for (name, a) in &self.aucs {
                fields.push(format!("\"{name}_auc\": {}", num(a[i])));
            }
            if let Some(r) = &self.randomisation {
                let col = |m: &[Vec<f64>]| list(&m.iter().map(|row| row[i]).collect::<Vec<_>>());
                fields.push(format!(
                    "\"randomisation\": {{\"spearman_abs\": {}, \"spearman_signed\": {}, \"ssim\": {}}}",
                    col(&r.spearman_abs),
                    col(&r.spearman_signed),
                    col(&r.ssim)
                ));
            }
            images.push(format!("    {{{}}}", fields.join(", ")));
        }
        let mut means = Vec::new();
        for (name, a) in &self.aucs {
            means.push(format!("\"{name}_auc\": {}", num(mean(a))));
        }
        if let Some(r) = &self.randomisation {
            use saliency_lab::evaluation::RandomisationResult as R;
            means.push(format!(
                "\"randomisation\": {{\"spearman_abs\": {}, \"spearman_signed\": {}, \"ssim\": {}}}",
                list(&R::means(&r.spearman_abs)),
                list(&R::means(&r.spearman_signed)),
                list(&R::means(&r.ssim))
            ));
        }
        let layers = self.randomisation.as_ref().map_or(String::new(), |r| {
            format!(
                ",\n  \"layers\": [{}]",
                r.layers
                    .iter()
                    .map(|l| format!("\"{l}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        format!(
            "{{\n  \"method\": \"{}\",\n  \"target\": \"{}\"{layers},\n  \"images\": [\n{}\n  ],\n  \"mean\": {{{}}}\n}}\n",
            self.method,
            self.target,
            images.join(",\n"),
            means.join(", ")
        )
    }

    fn table(&self) -> String {
        let mut t = format!(
            "{} ({} images, target: {})\n",
            self.method,
            self.targets.len(),
            self.target
        );
        for (name, a) in &self.aucs {
            let better = if *name == "deletion" {
                "lower is better"
            } else {
                "higher is better"
            };
            t.push_str(&format!("  {name} AUC: mean {:.4} ({better})\n", mean(a)));
        }
        if let Some(r) = &self.randomisation {
            use saliency_lab::evaluation::RandomisationResult as R;
            let (a, s, q) = (
                R::means(&r.spearman_abs),
                R::means(&r.spearman_signed),
                R::means(&r.ssim),
            );
            t.push_str("  randomised up to   Spearman |map|   Spearman map   SSIM\n");
            for (k, layer) in r.layers.iter().enumerate() {
                t.push_str(&format!(
                    "  {layer:<16} {:>14.3} {:>14.3} {:>6.3}\n",
                    a[k], s[k], q[k]
                ));
            }
        }
        t
    }
}

/// An attribution and its two 2-D summaries.
struct Maps {
    values: Tensor,
    max: Tensor,
    maxabs: Tensor,
    /// Whether `values` is a gradient (written as `grad.npy` too).
    gradient: bool,
}

/// Runs `method` a few images at a time (each image's attribution depends
/// on that image alone; `chunk_ranges` never leaves one image alone in a
/// chunk of single-pass methods), with a progress bar and its warnings on
/// stderr.
fn attribute(
    method: &dyn attribution::Method,
    model: &Model,
    x: &Tensor,
    targets: &[i64],
    name: &str,
) -> Result<Maps> {
    let n = targets.len();
    // Methods that run many passes per image report after each image.
    let per_call = if method.passes_per_image() == 1 {
        saliency_lab::CPU_CHUNK as usize
    } else {
        1
    };
    let bar = progress(n, name);
    let mut parts = Vec::new();
    for range in saliency_lab::chunk_ranges(n, per_call) {
        let (start, k) = (range.start, range.len());
        let a = method.attribute(
            model,
            &x.narrow(0, start as i64, k as i64),
            &targets[start..start + k],
        )?;
        for w in a.warnings {
            let w = attribution::Warning {
                image: start + w.image,
                ..w
            };
            bar.suspend(|| eprintln!("maps: {w}"));
        }
        parts.push(a.values);
        bar.inc(k as u64);
    }
    bar.finish_and_clear();
    let values = Tensor::cat(&parts, 0);
    Ok(Maps {
        max: attribution::max(&values)?,
        maxabs: attribution::max_abs(&values)?,
        gradient: matches!(name, "vanilla" | "smoothgrad" | "smoothgrad-sq" | "vargrad"),
        values,
    })
}

/// The lab's blur average of each image: the mean gradient over the image and
/// its blurred copies; the maps average the copies' maps.
fn blur_average(model: &Model, images: &Array4<u8>, targets: &[i64]) -> Result<Maps> {
    let bar = progress(targets.len(), "blur-average");
    let (mut g, mut m, mut ma) = (vec![], vec![], vec![]);
    for (i, &t) in targets.iter().enumerate() {
        let image = images.index_axis(ndarray::Axis(0), i);
        let b = attribution::blur_average(model, image, t, &attribution::LAB_SIGMAS)?;
        g.push(b.gradients.mean_dim(0, true, Kind::Float));
        m.push(attribution::max(&b.gradients)?.mean_dim(0, true, Kind::Float));
        ma.push(b.average.unsqueeze(0));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(Maps {
        values: Tensor::cat(&g, 0),
        max: Tensor::cat(&m, 0),
        maxabs: Tensor::cat(&ma, 0),
        gradient: true,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Many batches in one process: keep freed memory for the next one.
    saliency_lab::keep_freed_memory();
    let start = std::time::Instant::now();
    let (result, stats) = match &cli.command {
        Some(Command::Evaluate(args)) => (evaluate(args), args.common.stats),
        None => (run(&cli.maps), cli.maps.common.stats),
    };
    match result {
        Ok(()) => {
            if stats {
                let rss = saliency_lab::peak_rss_mib()
                    .map_or("unknown".into(), |m| format!("{m:.0} MiB"));
                println!(
                    "wall time {:.2} s, peak RSS {rss}",
                    start.elapsed().as_secs_f64()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("maps: error: {e}");
            ExitCode::FAILURE
        }
    }
}
