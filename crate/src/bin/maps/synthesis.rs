//! `maps fool` and `maps visualise`: images made by gradient ascent on a
//! class score (CS231n's fooling images and class visualisations).

use std::path::PathBuf;

use clap::Args as ClapArgs;
use ndarray::Array1;
use saliency_lab::convert::{write_npy, write_npy_f32};
use saliency_lab::model::Numerics;
use saliency_lab::plot::{fooling_grid, image_row};
use saliency_lab::synthesis::{ClassVisualisation, FoolingImage};
use saliency_lab::transforms::{stack_images, IMAGE_SIZE};
use saliency_lab::{Error, ImagenetVal, Model, Result, NUM_CLASSES};
use tch::Device;

use crate::work::progress;

/// The model shared by both commands.
#[derive(Debug, ClapArgs)]
pub(crate) struct ModelArgs {
    /// SqueezeNet 1.1 weights (safetensors, torchvision's names); default:
    /// the file set-up installed.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (default: a CUDA GPU when one is usable).
    #[arg(long)]
    device: Option<String>,
    /// `fast` (default) or `pytorch` (PyTorch's own order and layout).
    #[arg(long, value_enum, default_value = "fast")]
    numerics: Numerics,
    /// Output folder (created if missing).
    #[arg(long, default_value = "maps-out")]
    out: PathBuf,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct FoolArgs {
    /// PNG or JPEG files (RGB, shorter side resized to 224, centre-cropped).
    #[arg(long, num_args = 1.., conflicts_with = "npz", required_unless_present = "npz")]
    image: Vec<PathBuf>,
    /// An npz as the lab's imagenet_val_25.npz.
    #[arg(long)]
    npz: Option<PathBuf>,
    /// With --npz: the images to fool (default: all).
    #[arg(long, num_args = 1.., requires = "npz")]
    index: Vec<usize>,
    /// The class each image should be taken for: one for every image, or
    /// one per image.
    #[arg(long, num_args = 1.., required = true, allow_negative_numbers = true)]
    target: Vec<i64>,
    /// The most gradient steps per image.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Each step's L2 length in the preprocessed space.
    #[arg(long, default_value_t = 1.0)]
    learning_rate: f64,
    /// Let pixels leave the range of a real image (CS231n's rule as
    /// written; by default each step is clamped to it).
    #[arg(long)]
    no_clamp: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct VisualiseArgs {
    /// The classes to synthesise an image of (one image each).
    #[arg(long, num_args = 1.., required = true, allow_negative_numbers = true)]
    target: Vec<i64>,
    /// The seed of the initial noise and the jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Gradient steps.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Each step's L2 length in the preprocessed space.
    #[arg(long, default_value_t = 25.0)]
    learning_rate: f64,
    /// The weight of the L2 penalty on the image.
    #[arg(long, default_value_t = 1e-3)]
    l2_reg: f64,
    /// Blur every N steps (0: never).
    #[arg(long, default_value_t = 10)]
    blur_every: usize,
    /// The blur's sigma in pixels.
    #[arg(long, default_value_t = 0.5)]
    blur_sigma: f64,
    /// The largest random jitter in pixels (0: none).
    #[arg(long, default_value_t = 16)]
    max_jitter: i64,
    #[command(flatten)]
    model: ModelArgs,
}

fn load_model(args: &ModelArgs) -> Result<(Model, Device)> {
    let device = saliency_lab::device::parse_device(args.device.as_deref().unwrap_or("auto"))?;
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => saliency_lab::assets::weights_path()?,
    };
    let model = saliency_lab::squeezenet1_1(&weights, device)?.with_numerics(args.numerics);
    Ok((model, device))
}

/// Checks every class before any work.
fn check_classes(op: &'static str, targets: &[i64]) -> Result<()> {
    match targets
        .iter()
        .find(|t| !(0..NUM_CLASSES as i64).contains(t))
    {
        Some(t) => Err(Error::parameter(
            op,
            "--target",
            t,
            format!("a class must be in 0..{NUM_CLASSES}"),
        )),
        None => Ok(()),
    }
}

/// The class names, where the lab's data (or the given npz) is there to
/// name them; otherwise the numbers.
struct Names(Option<ImagenetVal>);

impl Names {
    fn name(&self, class: i64) -> String {
        match self.0.as_ref().and_then(|d| d.class_name(class).ok()) {
            Some(name) => format!("{class} ({})", name.split(',').next().unwrap_or(name)),
            None => class.to_string(),
        }
    }
}

pub(crate) fn fool(args: &FoolArgs) -> Result<()> {
    const OP: &str = "maps fool";
    check_classes(OP, &args.target)?;
    let (images, names) = match &args.npz {
        Some(npz) => {
            let data = saliency_lab::load_imagenet_val(npz)?;
            let data = if args.index.is_empty() {
                data
            } else {
                data.select(&args.index)?
            };
            (data.images.clone(), Names(Some(data)))
        }
        None => {
            let imgs = args
                .image
                .iter()
                .map(|p| saliency_lab::load_image_file(p, IMAGE_SIZE))
                .collect::<Result<Vec<_>>>()?;
            let names = saliency_lab::assets::data_path()
                .ok()
                .and_then(|p| saliency_lab::load_imagenet_val(p).ok());
            (stack_images(&imgs)?, Names(names))
        }
    };
    let n = images.shape()[0];
    let targets = match args.target.len() {
        1 => vec![args.target[0]; n],
        k if k == n => args.target.clone(),
        k => {
            return Err(Error::parameter(
                OP,
                "--target",
                format!("{k} classes"),
                format!("give one class for every image, or one per image ({n})"),
            ))
        }
    };
    let (model, device) = load_model(&args.model)?;
    let x = saliency_lab::preprocess_batch(images.view())?.to_device(device);
    let config = FoolingImage::default()
        .with_max_steps(args.steps)
        .with_learning_rate(args.learning_rate)
        .with_clamp(!args.no_clamp);
    config.check()?;
    let bar = progress(n, "fool (images)");
    let start = std::time::Instant::now();
    let fooled =
        config.run_with_progress(&model, &x, &targets, &mut |k| bar.set_position(k as u64))?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let out = &args.model.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_npy_f32(out.join("fooled.npy"), &fooled.images)?;
    write_npy_f32(out.join("input.npy"), &x)?;
    write_npy(out.join("targets.npy"), &Array1::from(targets.clone()))?;
    let steps: Vec<i64> = fooled.steps.iter().map(|&s| s as i64).collect();
    write_npy(out.join("steps.npy"), &Array1::from(steps))?;
    let before: Vec<String> = fooled.before.iter().map(|&c| names.name(c)).collect();
    let after: Vec<String> = fooled.after.iter().map(|&c| names.name(c)).collect();
    fooling_grid(&x, &fooled.images, &before, &after)?
        .with_cell_size(192)
        .render()?
        .save_png(out.join("fooled.png"))?;
    let d = (&fooled.images - &x).reshape([n as i64, -1]);
    let l2 = Vec::<f32>::try_from(d.norm_scalaropt_dim(2, [1], false).to_device(Device::Cpu))?;
    let linf = Vec::<f32>::try_from(d.abs().amax([1], false).to_device(Device::Cpu))?;
    for i in 0..n {
        println!(
            "image {i}: {} -> {} in {} step(s){} (L2 {:.3}, Linf {:.3})",
            before[i],
            after[i],
            fooled.steps[i],
            if fooled.fooled[i] {
                ""
            } else {
                ", NOT fooled: the step limit was reached"
            },
            l2[i],
            linf[i]
        );
    }
    let count = fooled.fooled.iter().filter(|&&f| f).count();
    println!(
        "{count} of {n} image(s) fooled in {seconds:.2} s; written to {}",
        out.display()
    );
    Ok(())
}

pub(crate) fn visualise(args: &VisualiseArgs) -> Result<()> {
    const OP: &str = "maps visualise";
    check_classes(OP, &args.target)?;
    let config = ClassVisualisation::default()
        .with_seed(args.seed)
        .with_steps(args.steps)
        .with_learning_rate(args.learning_rate)
        .with_l2_reg(args.l2_reg)
        .with_blur_every(args.blur_every)
        .with_blur_sigma(args.blur_sigma)
        .with_max_jitter(args.max_jitter);
    config.check()?;
    let (model, device) = load_model(&args.model)?;
    let n = args.target.len();
    let noise = config.noise(n, device);
    let jitter = config.jitter(n);
    let bar = progress(n * args.steps, "visualise (image-steps)");
    let start = std::time::Instant::now();
    let visual = config.run_from(&model, &noise, &jitter, &args.target, &mut |k| {
        bar.set_position(k as u64);
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let out = &args.model.out;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_npy_f32(out.join("visual.npy"), &visual.images)?;
    write_npy_f32(out.join("scores.npy"), &visual.scores)?;
    write_npy_f32(out.join("final_scores.npy"), &visual.final_scores)?;
    write_npy_f32(out.join("noise.npy"), &noise)?;
    write_npy(out.join("jitter.npy"), &jitter.to_array())?;
    write_npy(out.join("targets.npy"), &Array1::from(args.target.clone()))?;
    let names = Names(
        saliency_lab::assets::data_path()
            .ok()
            .and_then(|p| saliency_lab::load_imagenet_val(p).ok()),
    );
    let titles: Vec<String> = args.target.iter().map(|&c| names.name(c)).collect();
    image_row(&visual.images, &titles)?
        .render()?
        .save_png(out.join("visual.png"))?;
    let first = Vec::<f32>::try_from(visual.scores.select(1, 0)).unwrap_or_default();
    let last = Vec::<f32>::try_from(&visual.final_scores)?;
    for (i, title) in titles.iter().enumerate() {
        let start = first.get(i).map_or("-".into(), |s| format!("{s:.2}"));
        println!("class {title}: score {start} -> {:.2}", last[i]);
    }
    println!(
        "{n} image(s) in {seconds:.2} s; written to {}",
        out.display()
    );
    Ok(())
}
