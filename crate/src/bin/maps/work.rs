//! What `maps` and `maps evaluate` do, once the command line is parsed.

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array4};
use saliency_lab::attribution::{self, Method, NoiseTunnel};
use saliency_lab::convert::{write_npy, write_npy_f32};
use saliency_lab::evaluation::{
    aucs, describe, CausalMetric, ClassSensitivity, OtherClass, Randomisation,
};
use saliency_lab::registry::Built;
use saliency_lab::transforms::{stack_images, IMAGE_SIZE};
use saliency_lab::{Error, Model, Result};
use tch::{Kind, Tensor};

use crate::report::Report;
use crate::{Args, Common, EvaluateArgs, Metric};

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

pub(crate) fn progress(n: usize, what: &str) -> ProgressBar {
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
    method: Option<Box<dyn Method>>,
}

fn prepare(args: &Common) -> Result<Prepared> {
    let device = saliency_lab::device::parse_device(args.device.as_deref().unwrap_or("auto"))?;
    let mut method = match args.method.build(&args.params)? {
        Built::Method(m) => Some(m),
        Built::BlurAverage => None,
    };
    if let Some(m) = &method {
        m.validate()?;
    }
    if let Some(estimator) = args.tunnel {
        let Some(inner) = method.take() else {
            return Err(Error::parameter(
                "maps",
                "--tunnel",
                "with --method blur-average",
                "the blur average is not an attribution method a tunnel can run",
            ));
        };
        let tunnel = NoiseTunnel::new(inner, args.params.tunnel_config()).with_estimator(estimator);
        tunnel.validate()?;
        method = Some(Box::new(tunnel));
    }
    let (images, labels) = load(args)?;
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None => saliency_lab::assets::weights_path()?,
    };
    let model = saliency_lab::squeezenet1_1(&weights, device)?.with_numerics(args.numerics);
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

pub(crate) fn run(args: &Args) -> Result<()> {
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

pub(crate) fn evaluate(args: &EvaluateArgs) -> Result<()> {
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
                let layers = p.model.weight_layers().len();
                let bar = progress(layers, "randomisation (layers)");
                let r = Randomisation {
                    order: args.order,
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
                            "{i},{layer},{},{},{}\n",
                            describe(r.spearman_abs[k][i], 6),
                            describe(r.spearman_signed[k][i], 6),
                            describe(r.ssim[k][i], 6)
                        ));
                    }
                }
                let path = out.join("randomisation.csv");
                std::fs::write(&path, csv).map_err(|e| Error::io(&path, e))?;
                report.randomisation = Some(r);
            }
            Metric::ClassSensitivity => {
                let check = ClassSensitivity {
                    other: OtherClass::parse(&args.other)?,
                };
                let bar = progress(n, "class sensitivity");
                let r = check.run_with_progress(
                    &p.model,
                    method.as_ref(),
                    &p.x,
                    &targets,
                    &mut |k| bar.inc(k as u64),
                )?;
                bar.finish_and_clear();
                let mut csv =
                    String::from("image,target,other,spearman_abs,spearman_signed,ssim\n");
                for i in 0..n {
                    csv.push_str(&format!(
                        "{i},{},{},{},{},{}\n",
                        r.targets[i],
                        r.others[i],
                        describe(r.spearman_abs[i], 6),
                        describe(r.spearman_signed[i], 6),
                        describe(r.ssim[i], 6)
                    ));
                }
                let path = out.join("class_sensitivity.csv");
                std::fs::write(&path, csv).map_err(|e| Error::io(&path, e))?;
                report.class_sensitivity = Some((args.other.clone(), r));
            }
        }
    }
    let path = out.join("metrics.json");
    std::fs::write(&path, report.json()?).map_err(|e| Error::io(&path, e))?;
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
    method: &dyn Method,
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
        gradient: method.is_gradient(),
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
