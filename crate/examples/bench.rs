//! The Rust side of `scripts/bench.py` (run it through that script, which
//! times PyTorch and Captum in the same command and prints the ratios).
//!
//! ```text
//! cargo run --release --example bench -- --out DIR [--runs 5] [--sg-runs 2] [--sg-images 25] [--batch 25] [--device cpu]
//! cargo run --release --example bench -- --out DIR --method NAME [--images 25] [--runs 3] [--device cpu]
//! ```
//!
//! Writes `DIR/rust.json` (timings in seconds, peak RSS in MiB) and the maps
//! it computed (`rust_vanilla.npy`, `rust_smoothgrad.npy`) so the script can
//! check that the fast answer is also the right one. With `--method`, times
//! one attribution method (with the benchmark's settings, `method()` below)
//! and writes `DIR/rust_method_NAME.json` and `.npy`. With `--causal`, times
//! deletion and insertion (RISE's, 224 pixels a step) of the vanilla
//! gradient's maps on `--images` images, and writes `DIR/causal/` (the
//! inputs, maps and targets for `scripts/reference_evaluation.py`, the
//! curves, `rust.json`).

use std::path::PathBuf;
use std::time::Instant;

#[path = "../src/bin/maps/memory.rs"]
mod memory;

use saliency_lab::attribution::{
    smoothgrad, vanilla_gradient, IntegratedGradients, LrpRule, Method, NoiseGenerator,
    NoiseSamples, NoiseTunnel, Occlusion, SmoothGradConfig,
};
use saliency_lab::convert::write_npy_f32;
use saliency_lab::registry::by_name;
use saliency_lab::{assets, load_imagenet_val, preprocess_batch, squeezenet1_1, Result};
use tch::{Device, Kind, Tensor};

struct Args {
    out: PathBuf,
    runs: usize,
    sg_runs: usize,
    sg_images: usize,
    batch: usize,
    device: Device,
    method: Option<String>,
    images: usize,
    causal: bool,
}

fn parse() -> Args {
    let mut a = Args {
        out: PathBuf::from("bench-out"),
        runs: 5,
        sg_runs: 2,
        sg_images: 25,
        batch: 25,
        device: Device::Cpu,
        method: None,
        images: 25,
        causal: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().cloned().unwrap_or_default();
        match k.as_str() {
            "--out" => a.out = PathBuf::from(v()),
            "--runs" => a.runs = v().parse().unwrap_or(5),
            "--sg-runs" => a.sg_runs = v().parse().unwrap_or(2),
            "--sg-images" => a.sg_images = v().parse().unwrap_or(25),
            "--batch" => a.batch = v().parse().unwrap_or(25),
            "--method" => a.method = Some(v()),
            "--images" => a.images = v().parse().unwrap_or(25),
            "--causal" => a.causal = true,
            "--device" => match saliency_lab::device::parse_device(&v()) {
                Ok(d) => a.device = d,
                Err(e) => {
                    eprintln!("bench: {e}");
                    std::process::exit(2);
                }
            },
            other => eprintln!("bench: ignoring {other}"),
        }
    }
    a
}

fn peak_rss_mib() -> f64 {
    saliency_lab::peak_rss_mib().unwrap_or(f64::NAN)
}

fn sync(device: Device) {
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The benchmark's settings of each method (`scripts/bench.py` gives Captum
/// the same): the paper's defaults, but Occlusion with 56-pixel windows 28
/// apart (7 x 7 windows), the noise tunnel over Integrated Gradients with
/// 10 samples of 20 steps, GradientShap with 200 samples, and LRP by rule
/// (`lrp-RULE`).
fn method(name: &str) -> Result<Box<dyn Method>> {
    Ok(match name {
        "occlusion" => Box::new(Occlusion::default().with_window(56).with_stride(28)),
        "smoothgrad-integrated-gradients" => Box::new(NoiseTunnel::new(
            IntegratedGradients::default().with_steps(20),
            SmoothGradConfig::default().with_samples(10),
        )),
        "gradient-shap" => {
            Box::new(saliency_lab::attribution::GradientShap::new().with_samples(200))
        }
        other if other.starts_with("lrp-") => Box::new(saliency_lab::attribution::Lrp::new(
            LrpRule::parse(&other[4..])?,
        )),
        other if other.starts_with("ig-batch-") => Box::new(
            IntegratedGradients::default().with_batch_size(other[9..].parse().unwrap_or(10)),
        ),
        other => by_name(other)?,
    })
}

/// Times `name` on the first `images` images, `runs` times.
fn bench_method(args: &Args, name: &str) -> Result<()> {
    memory::keep_freed_memory();
    let data = load_imagenet_val(assets::data_path()?)?;
    let model = squeezenet1_1(assets::weights_path()?, args.device)?;
    let n = args.images.min(data.len()) as i64;
    let x = preprocess_batch(data.images.view())?
        .narrow(0, 0, n)
        .to_device(args.device);
    let targets = &data.labels[..n as usize];
    let m = method(name)?;
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        let a = m.attribute(&model, &x, targets)?;
        sync(args.device);
        times.push(t.elapsed().as_secs_f64());
        write_npy_f32(args.out.join(format!("rust_method_{name}.npy")), &a.values)?;
    }
    let json = format!(
        "{{\"method\": \"{name}\", \"images\": {n}, \"runs\": {times:?}, \"rss_mib\": {:.1}}}\n",
        peak_rss_mib()
    );
    let path = args.out.join(format!("rust_method_{name}.json"));
    std::fs::write(&path, json).map_err(|e| saliency_lab::Error::io(&path, e))
}

/// Deletion and insertion of the vanilla maps of the first `images` images.
fn bench_causal(args: &Args) -> Result<()> {
    use saliency_lab::evaluation::CausalMetric;
    memory::keep_freed_memory();
    let data = load_imagenet_val(assets::data_path()?)?;
    let model = squeezenet1_1(assets::weights_path()?, args.device)?;
    let n = args.images.min(data.len()) as i64;
    let x = preprocess_batch(data.images.view())?
        .narrow(0, 0, n)
        .to_device(args.device);
    let targets = &data.labels[..n as usize];
    let maps = saliency_lab::attribution::max_abs(&vanilla_gradient(&model, &x, targets)?)?;
    let dir = args.out.join("causal");
    std::fs::create_dir_all(&dir).map_err(|e| saliency_lab::Error::io(&dir, e))?;
    write_npy_f32(dir.join("input.npy"), &x)?;
    write_npy_f32(dir.join("maps.npy"), &maps)?;
    saliency_lab::convert::write_npy(
        dir.join("targets.npy"),
        &ndarray::Array1::from(targets.to_vec()),
    )?;
    let mut times = Vec::new();
    for (name, metric) in [
        ("deletion", CausalMetric::deletion()),
        ("insertion", CausalMetric::insertion()),
    ] {
        let t = Instant::now();
        let curves = metric.curves(&model, &x, &maps, targets)?;
        sync(args.device);
        times.push(format!("\"{name}\": {:.4}", t.elapsed().as_secs_f64()));
        write_npy_f32(dir.join(format!("rust_{name}.npy")), &curves)?;
    }
    let path = dir.join("rust.json");
    let json = format!(
        "{{{}, \"images\": {n}, \"rss_mib\": {:.1}}}\n",
        times.join(", "),
        peak_rss_mib()
    );
    std::fs::write(&path, json).map_err(|e| saliency_lab::Error::io(&path, e))
}

fn main() -> Result<()> {
    let args = parse();
    std::fs::create_dir_all(&args.out).map_err(|e| saliency_lab::Error::io(&args.out, e))?;
    if let Some(name) = &args.method {
        return bench_method(&args, name);
    }
    if args.causal {
        return bench_causal(&args);
    }
    memory::keep_freed_memory();
    let data = load_imagenet_val(assets::data_path()?)?;

    let t = Instant::now();
    let model = squeezenet1_1(assets::weights_path()?, args.device)?;
    sync(args.device);
    let load = t.elapsed().as_secs_f64();

    let x = preprocess_batch(data.images.view())?.to_device(args.device);
    let mut vanilla = Vec::new();
    let mut grad = None;
    for _ in 0..args.runs {
        let t = Instant::now();
        let g = vanilla_gradient(&model, &x, &data.labels)?;
        sync(args.device);
        vanilla.push(t.elapsed().as_secs_f64());
        grad = Some(g);
    }
    if let Some(g) = &grad {
        write_npy_f32(args.out.join("rust_vanilla.npy"), g)?;
    }
    let rss_vanilla = peak_rss_mib();

    let n = args.sg_images.min(data.len());
    let xs = x.narrow(0, 0, n as i64);
    let cfg = SmoothGradConfig::default().with_batch_size(args.batch);
    let mut sg_times = Vec::new();
    for _ in 0..args.sg_runs {
        let t = Instant::now();
        let sg = smoothgrad(&model, &xs, &data.labels[..n], &cfg)?;
        sync(args.device);
        sg_times.push(t.elapsed().as_secs_f64());
        write_npy_f32(args.out.join("rust_smoothgrad.npy"), &sg.mean)?;
    }
    let rss = peak_rss_mib(); // before the CPU cross-check below loads a second model
    let cross = match args.device {
        Device::Cpu => String::new(),
        _ => cpu_agreement(&model, &xs, &data.labels[..n], &cfg)?,
    };
    let json = format!(
        concat!(
            "{{\"device\": \"{:?}\", \"threads\": {}, \"load_s\": {:.4}, \"vanilla_first_s\": {:.4}, ",
            "\"vanilla_steady_s\": {:.4}, \"vanilla_runs\": {:?}, \"rss_vanilla_mib\": {:.1}, ",
            "\"sg_images\": {}, \"sg_samples\": {}, \"sg_batch\": {}, \"sg_s\": {:.4}, \"sg_runs\": {:?}, \"rss_mib\": {:.1}{}}}\n"
        ),
        args.device,
        tch::get_num_threads(),
        load,
        vanilla[0],
        median(if vanilla.len() > 1 { vanilla[1..].to_vec() } else { vanilla.clone() }),
        vanilla,
        rss_vanilla,
        n,
        cfg.samples,
        cfg.batch_size,
        median(sg_times.clone()),
        sg_times,
        rss,
        cross,
    );
    let path = args.out.join("rust.json");
    std::fs::write(&path, json).map_err(|e| saliency_lab::Error::io(&path, e))?;
    println!("rust: wrote {}", path.display());
    Ok(())
}

/// On a GPU: the counter-based noise of image 0 drawn there and on the CPU
/// (largest difference), and that image's SmoothGrad both ways (relative L2
/// error; the GPU's convolutions round differently, TF32 included), as JSON
/// fields to append.
fn cpu_agreement(
    model: &saliency_lab::Model,
    xs: &Tensor,
    labels: &[i64],
    cfg: &SmoothGradConfig,
) -> Result<String> {
    let cfg = cfg.clone().with_generator(NoiseGenerator::Counter);
    let (img, cpu_img) = (
        xs.narrow(0, 0, 1),
        xs.narrow(0, 0, 1).to_device(Device::Cpu),
    );
    let on_device = NoiseSamples::new(&img, 0, &cfg)?
        .next_batch(4)
        .to_device(Device::Cpu);
    let on_cpu = NoiseSamples::new(&cpu_img, 0, &cfg)?.next_batch(4);
    let noise_diff = (on_device - on_cpu).abs().max().double_value(&[]);
    let cpu_model = squeezenet1_1(assets::weights_path()?, Device::Cpu)?;
    let a = smoothgrad(&cpu_model, &cpu_img, &labels[..1], &cfg)?.mean;
    let b = smoothgrad(model, &img, &labels[..1], &cfg)?
        .mean
        .to_device(Device::Cpu)
        .to_kind(Kind::Float);
    let rel = (&b - &a).norm().double_value(&[]) / a.norm().double_value(&[]);
    Ok(format!(
        ", \"noise_cpu_vs_device_max_abs\": {noise_diff:.3e}, \"sg_cpu_vs_device_rel_err\": {rel:.3e}"
    ))
}
