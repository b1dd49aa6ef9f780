//! `maps`: attribution maps from the command line, without Jupyter.
//!
//! ```text
//! maps --npz imagenet_val_25.npz --method smoothgrad --samples 50 --out out/
//! maps --image cat.jpg dog.png --method integrated-gradients --steps 32 --out out/
//! maps --npz imagenet_val_25.npz --method grad-cam --layer features.9 --out out/
//! maps --npz imagenet_val_25.npz --method guided-backprop --tunnel smoothgrad --samples 20 --out out/
//! maps --image cat.jpg --method lrp --rule epsilon-gamma-box --out out/
//! maps --image cat.jpg --method deeplift --baseline blur --out out/
//! ```
//!
//! `maps evaluate` asks whether the maps can be trusted (see its `--help`):
//!
//! ```text
//! maps evaluate --npz imagenet_val_25.npz --method vanilla --metric deletion insertion randomisation --out eval/
//! ```
//!
//! `maps fool` and `maps visualise` go the other way, from a class to an
//! image (CS231n's fooling images and class visualisations):
//!
//! ```text
//! maps fool --image cat.jpg --target 6 --out fool/
//! maps visualise --target 76 366 683 --seed 0 --out visual/
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
use saliency_lab::attribution::Estimator;
use saliency_lab::evaluation::Order;
use saliency_lab::model::Numerics;
use saliency_lab::registry::{MethodName, Params};

mod memory;
mod report;
mod synthesis;
mod work;

/// Attribution maps of SqueezeNet 1.1 (vanilla gradient, Input x Gradient,
/// Integrated Gradients, Guided Backprop, Deconvolution, Grad-CAM, Guided
/// Grad-CAM, Occlusion, DeepLift, DeepLiftShap, GradientShap, LRP with its
/// rules, SmoothGrad / SG-SQ / VarGrad over any of them, the lab's blur
/// average, and the controls: random, centre, edges), written as .npy files;
/// `maps evaluate` checks them (deletion, insertion, model randomisation,
/// class sensitivity).
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
    /// step, 225 scores), model randomisation (Adebayo et al.: the maps
    /// again after each layer is re-initialised, from the classifier down,
    /// compared with the original by Spearman's rank correlation and SSIM)
    /// and class sensitivity (Sixt et al.: the map for another class,
    /// compared the same way). Writes maxabs.npy (the maps ranked),
    /// deletion.npy / insertion.npy (float32 [N, 225]), randomisation.csv,
    /// class_sensitivity.csv and metrics.json, and prints a summary; a
    /// correlation with a constant map is "undefined: constant map" (null
    /// in the JSON).
    Evaluate(EvaluateArgs),
    /// Fooling images (CS231n): each image changed, by normalised gradient
    /// ascent on the target's score, until the model takes it for the
    /// target (or --steps is reached). Writes fooled.npy (float32 [N, 3,
    /// 224, 224], preprocessed as input.npy, also written), fooled.png (the
    /// originals, the fooling images and their differences), steps.npy and
    /// targets.npy, and prints each image's steps and classes before and
    /// after.
    Fool(synthesis::FoolArgs),
    /// Class visualisations (CS231n): an image synthesised from noise for
    /// each target, by regularised gradient ascent on its score (L2,
    /// jitter, clamping, blur). Writes visual.npy (float32 [N, 3, 224, 224],
    /// preprocessed), visual.png, scores.npy ([N, steps], the target's
    /// score at each step), final_scores.npy, and the noise.npy and
    /// jitter.npy it started from (to replay the run elsewhere).
    Visualise(synthesis::VisualiseArgs),
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
    method: MethodName,
    /// A noise tunnel over the method: each image's attribution averaged
    /// (or squared, or its variance taken) over noisy copies.
    #[arg(long, value_enum)]
    tunnel: Option<Estimator>,
    #[command(flatten)]
    params: Params,
    /// How the model computes: `fast` (the default: the same numbers, or
    /// equal to rounding, faster) or `pytorch` (PyTorch's own order and
    /// layout, for agreeing with PyTorch and Captum to float rounding).
    #[arg(long, value_enum, default_value = "fast")]
    numerics: Numerics,
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
    /// The map for another class (--other) against the target's: it should differ.
    ClassSensitivity,
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
    order: Order,
    /// Deletion and insertion: pixels per step.
    #[arg(long, default_value_t = 224)]
    step: usize,
    /// Class sensitivity: the class each map is compared with, `lowest`
    /// (the class the model finds least likely; the default), `runner-up`
    /// (its second choice) or a class number.
    #[arg(long, default_value = "lowest")]
    other: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Many batches in one process: keep freed memory for the next one.
    memory::keep_freed_memory();
    let start = std::time::Instant::now();
    let (result, stats) = match &cli.command {
        Some(Command::Evaluate(args)) => (work::evaluate(args), args.common.stats),
        Some(Command::Fool(args)) => (synthesis::fool(args), false),
        Some(Command::Visualise(args)) => (synthesis::visualise(args), false),
        None => (work::run(&cli.maps), cli.maps.common.stats),
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
