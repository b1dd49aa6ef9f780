//! `maps`: saliency maps from the command line, without Jupyter.
//!
//! ```text
//! maps --npz imagenet_val_25.npz --method smoothgrad --samples 50 --out out/
//! maps --image cat.jpg dog.png --method vanilla --out out/
//! ```
//!
//! Writes to `--out`: `grad.npy` (float32 `[N, 3, 224, 224]`, the method's
//! multi-channel result), `max.npy` and `maxabs.npy` (float32 `[N, 224, 224]`),
//! `scores.npy` (float32 `[N, 1000]`, the clean images' class scores) and
//! `targets.npy` (int64 `[N]`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use ndarray::{Array1, Array4};
use saliency_lab::attribution::{self, SmoothGradConfig};
use saliency_lab::convert::{write_npy, write_npy_f32};
use saliency_lab::transforms::{stack_images, IMAGE_SIZE};
use saliency_lab::{assets, Error, Result};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// The gradient of the target score (Simonyan et al. 2014).
    Vanilla,
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

/// Saliency maps (vanilla gradient, SmoothGrad, SG-SQ, VarGrad, the lab's
/// blur average) of SqueezeNet 1.1, written as .npy files.
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
    /// Noisy samples per image (SmoothGrad family).
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Noise standard deviation as a fraction of each image's range.
    #[arg(long, default_value_t = 0.15)]
    noise: f64,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Noisy copies per forward/backward pass (bounds memory).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// The class to explain for every image; default: the label in the npz,
    /// else the top-1 class.
    #[arg(long)]
    target: Option<i64>,
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

fn run(args: &Args) -> Result<()> {
    let device = saliency_lab::device::parse_device(args.device.as_deref().unwrap_or("auto"))?;
    let (images, labels): (Array4<u8>, Option<Vec<i64>>) = match &args.npz {
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
    };
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => assets::weights_path()?,
    };
    let model = saliency_lab::squeezenet1_1(&weights, device)?;
    let x = saliency_lab::preprocess_batch(images.view())?.to_device(device);
    let scores = model.scores(&x)?;
    let targets = match (args.target, labels) {
        (Some(t), _) => vec![t; images.shape()[0]],
        (None, Some(labels)) => labels,
        (None, None) => saliency_lab::top1(&scores)?,
    };
    let config = SmoothGradConfig::default()
        .with_noise_level(args.noise)
        .with_samples(args.samples)
        .with_seed(args.seed)
        .with_batch_size(args.batch);
    let (grad, max, maxabs) = match args.method {
        Method::Vanilla => {
            let g = attribution::vanilla_gradient(&model, &x, &targets)?;
            summaries(g)?
        }
        Method::Smoothgrad | Method::SmoothgradSq | Method::Vargrad => {
            let sg = attribution::smoothgrad(&model, &x, &targets, &config)?;
            summaries(match args.method {
                Method::Smoothgrad => sg.mean,
                Method::SmoothgradSq => sg.mean_square,
                _ => sg.variance,
            })?
        }
        Method::BlurAverage => {
            let (mut g, mut m, mut ma) = (vec![], vec![], vec![]);
            for (i, &t) in targets.iter().enumerate() {
                let image = images.index_axis(ndarray::Axis(0), i);
                let b = attribution::blur_average(&model, image, t, &attribution::LAB_SIGMAS)?;
                g.push(b.gradients.mean_dim(0, true, Kind::Float));
                m.push(attribution::max(&b.gradients)?.mean_dim(0, true, Kind::Float));
                ma.push(b.average.unsqueeze(0));
            }
            (Tensor::cat(&g, 0), Tensor::cat(&m, 0), Tensor::cat(&ma, 0))
        }
    };
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    write_npy_f32(args.out.join("grad.npy"), &grad)?;
    write_npy_f32(args.out.join("max.npy"), &max)?;
    write_npy_f32(args.out.join("maxabs.npy"), &maxabs)?;
    write_npy_f32(args.out.join("scores.npy"), &scores)?;
    write_npy(args.out.join("targets.npy"), &Array1::from(targets.clone()))?;
    println!(
        "{:?} maps of {} image(s) written to {}",
        args.method,
        targets.len(),
        args.out.display()
    );
    Ok(())
}

fn summaries(g: Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let max = attribution::max(&g)?;
    let maxabs = attribution::max_abs(&g)?;
    Ok((g, max, maxabs))
}

fn main() -> ExitCode {
    let args = Args::parse();
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
