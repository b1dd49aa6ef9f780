//! `maps`: attribution maps from the command line, without Jupyter.
//!
//! ```text
//! maps --npz imagenet_val_25.npz --method smoothgrad --samples 50 --out out/
//! maps --image cat.jpg dog.png --method integrated-gradients --steps 32 --out out/
//! maps --npz imagenet_val_25.npz --method grad-cam --layer features.9 --out out/
//! maps --npz imagenet_val_25.npz --method guided-backprop --tunnel smoothgrad --samples 20 --out out/
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

use clap::{Args as ClapArgs, Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array4};
use saliency_lab::attribution::{
    self, Baseline, Estimator, GradCam, GuidedBackprop, GuidedGradCam, InputXGradient,
    IntegratedGradients, Method as _, NoiseTunnel, Occlusion, Rule, SmoothGradConfig, Vanilla,
};
use saliency_lab::convert::{write_npy, write_npy_f32};
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
/// average), written as .npy files.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
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
    /// The class to explain for every image; default: the label in the npz,
    /// else the top-1 class.
    #[arg(long)]
    target: Option<i64>,
    /// Output folder (created if missing).
    #[arg(long, default_value = "maps-out")]
    out: PathBuf,
    /// Also write `input.npy`, the preprocessed batch (float32 [N, 3, 224, 224]).
    #[arg(long)]
    save_input: bool,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (default: a CUDA GPU when one is usable).
    #[arg(long)]
    device: Option<String>,
    /// Print the wall time and the peak resident memory (Linux) at the end.
    #[arg(long)]
    stats: bool,
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
            Method::BlurAverage => return None,
        })
    }
}

/// The images and, from an npz, their labels.
fn load(args: &Args) -> Result<(Array4<u8>, Option<Vec<i64>>)> {
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
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {elapsed} (ETA {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("maps: {what}"));
    bar
}

fn run(args: &Args) -> Result<()> {
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
    let n = images.shape()[0];
    let targets = match (args.target, labels) {
        (Some(t), _) => vec![t; n],
        (None, Some(labels)) => labels,
        (None, None) => saliency_lab::top1(&scores)?,
    };
    let name = method
        .as_ref()
        .map_or_else(|| "blur-average".to_string(), |m| m.name());
    let attr = match &method {
        Some(m) => attribute(m.as_ref(), &model, &x, &targets, &name)?,
        None => blur_average(&model, &images, &targets)?,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    write_npy_f32(args.out.join("attr.npy"), &attr.values)?;
    if attr.gradient {
        write_npy_f32(args.out.join("grad.npy"), &attr.values)?;
    }
    write_npy_f32(args.out.join("max.npy"), &attr.max)?;
    write_npy_f32(args.out.join("maxabs.npy"), &attr.maxabs)?;
    write_npy_f32(args.out.join("scores.npy"), &scores)?;
    write_npy(args.out.join("targets.npy"), &Array1::from(targets.clone()))?;
    if args.save_input {
        write_npy_f32(args.out.join("input.npy"), &x)?;
    }
    println!(
        "{name} maps of {} image(s) written to {}",
        targets.len(),
        args.out.display()
    );
    Ok(())
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
/// on that image alone), with a progress bar and its warnings on stderr.
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
    for start in (0..n).step_by(per_call) {
        let k = per_call.min(n - start);
        let a = method.attribute(model, &x.narrow(0, start as i64, k as i64), &targets[start..start + k])?;
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
    let args = Args::parse();
    // Many batches in one process: keep freed memory for the next one.
    saliency_lab::keep_freed_memory();
    let start = std::time::Instant::now();
    match run(&args) {
        Ok(()) => {
            if args.stats {
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
