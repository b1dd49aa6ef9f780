//! The evaluation module against the field's own code on the same maps
//! (`scripts/reference_evaluation.py`: RISE's `evaluation.py`, scipy's
//! `spearmanr`, scikit-image's `structural_similarity`), and the behaviour
//! the papers report, on the lab's images with the real weights.

mod common;

use std::path::{Path, PathBuf};

use common::{data, model, python, read_npy, repo_root};
use saliency_lab::attribution::{
    max_abs, GradCam, GuidedBackprop, Method, Occlusion, SmoothGradConfig, Vanilla,
};
use saliency_lab::convert::{write_npy, write_npy_f32};
use saliency_lab::evaluation::causal::rise_kernel;
use saliency_lab::evaluation::{
    aucs, normalise, spearman, ssim, tunnel_convergence, CausalMetric, CentreGaussian, Edges,
    Order, Randomisation, RandomisationResult,
};
use saliency_lab::preprocess_batch;
use tch::Tensor;

/// Deletion and insertion: AUCs within 1e-3 of RISE's code (the issue's
/// bound); the curves' probabilities within 1e-3 too (the crate runs the
/// steps in batches in NHWC layout, RISE one image at a time in NCHW:
/// rounding only). Similarities: Spearman within 1e-4, SSIM within 1e-3.
const AUC_TOL: f64 = 1e-3;
const SPEARMAN_TOL: f64 = 1e-4;
const SSIM_TOL: f64 = 1e-3;

fn inputs(n: i64) -> (Tensor, Vec<i64>) {
    let d = data();
    let x = preprocess_batch(d.images.view()).unwrap();
    (x.narrow(0, 0, n), d.labels[..n as usize].to_vec())
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("evaluation")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn reference(d: &Path) {
    let weights = saliency_lab::assets::weights_path().unwrap();
    let status = std::process::Command::new(python())
        .arg(repo_root().join("scripts/reference_evaluation.py"))
        .arg("--dir")
        .arg(d)
        .arg("--weights")
        .arg(&weights)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run scripts/setup)", python().display()));
    assert!(status.success(), "reference_evaluation.py failed");
}

fn f64s(path: &Path) -> Vec<f64> {
    read_npy::<f64>(path).iter().copied().collect()
}

#[test]
#[ignore = "needs the venv's Python with torch and scipy (scripts/test runs it)"]
fn deletion_and_insertion_equal_rises_code() {
    // Three images, ranked by their vanilla gradient and by the centre
    // Gaussian (symmetric: many equal values, so the order of ties counts).
    let (x, y) = inputs(3);
    let model = model();
    let vanilla = max_abs(&Vanilla.attribute(&model, &x, &y).unwrap().values).unwrap();
    let centre = max_abs(
        &CentreGaussian::default()
            .attribute(&model, &x, &y)
            .unwrap()
            .values,
    )
    .unwrap();
    let xs = Tensor::cat(&[&x, &x], 0);
    let maps = Tensor::cat(&[vanilla, centre], 0);
    let targets: Vec<i64> = y.iter().chain(&y).copied().collect();
    let d = dir("causal");
    write_npy_f32(d.join("input.npy"), &xs).unwrap();
    write_npy_f32(d.join("maps.npy"), &maps).unwrap();
    write_npy(
        d.join("targets.npy"),
        &ndarray::Array1::from(targets.clone()),
    )
    .unwrap();
    reference(&d);
    let gkern = read_npy::<f32>(&d.join("rise/gkern.npy"));
    let ours = saliency_lab::convert::to_array_f32(&rise_kernel()).unwrap();
    let kdiff = gkern
        .iter()
        .zip(ours.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(kdiff == 0.0, "gkern(11, 5) differs by {kdiff:e}");
    for metric in [CausalMetric::deletion(), CausalMetric::insertion()] {
        let name = metric.kind.name();
        let curves = metric.curves(&model, &xs, &maps, &targets).unwrap();
        assert_eq!(curves.size(), [6, 225]);
        let want = read_npy::<f32>(&d.join(format!("rise/{name}.npy")));
        let got = saliency_lab::convert::to_array_f32(&curves).unwrap();
        let worst = got
            .iter()
            .zip(want.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let (ours, rise) = (
            aucs(&curves).unwrap(),
            f64s(&d.join(format!("rise/{name}_auc.npy"))),
        );
        let auc_err = ours
            .iter()
            .zip(&rise)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!("{name}: AUCs {ours:.4?} (RISE {rise:.4?}); largest difference: AUC {auc_err:.1e}, probability {worst:.1e}");
        assert!(
            auc_err <= AUC_TOL,
            "{name}: AUC differs from RISE's by {auc_err:e}"
        );
        assert!(
            f64::from(worst) <= AUC_TOL,
            "{name}: a probability differs by {worst:e}"
        );
    }
}

#[test]
#[ignore = "needs the venv's Python with scipy and scikit-image (scripts/test runs it)"]
fn spearman_and_ssim_equal_scipy_and_scikit_image() {
    // Pairs: two images' vanilla maps before and after each randomisation
    // step, and maps full of ties (Grad-CAM, Occlusion) against vanilla.
    let (x, y) = inputs(2);
    let model = model();
    let r = Randomisation::default()
        .run(&model, &Vanilla, &x, &y)
        .unwrap();
    let cam = max_abs(&GradCam::default().attribute(&model, &x, &y).unwrap().values).unwrap();
    let occ = Occlusion::default().with_window(56).with_stride(28);
    let occ = max_abs(&occ.attribute(&model, &x, &y).unwrap().values).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for maps in &r.maps {
        a.push(r.original.shallow_clone());
        b.push(maps.shallow_clone());
    }
    a.extend([cam.shallow_clone(), occ.shallow_clone(), cam]);
    b.extend([r.original.shallow_clone(), r.original.shallow_clone(), occ]);
    let (a, b) = (Tensor::cat(&a, 0), Tensor::cat(&b, 0));
    let d = dir("similarity");
    write_npy_f32(d.join("pairs_a.npy"), &a).unwrap();
    write_npy_f32(d.join("pairs_b.npy"), &b).unwrap();
    reference(&d);
    let (want_rho, want_ssim) = (
        f64s(&d.join("rise/spearman.npy")),
        f64s(&d.join("rise/ssim.npy")),
    );
    let (mut worst_rho, mut worst_ssim) = (0.0f64, 0.0f64);
    for k in 0..a.size()[0] {
        let (p, q) = (a.get(k), b.get(k));
        let rho = spearman(&p, &q).unwrap();
        let s = ssim(&normalise(&p), &normalise(&q), 1.0).unwrap();
        worst_rho = worst_rho.max((rho - want_rho[k as usize]).abs());
        worst_ssim = worst_ssim.max((s - want_ssim[k as usize]).abs());
    }
    println!(
        "{} pairs: largest difference, Spearman {worst_rho:.1e}, SSIM {worst_ssim:.1e}",
        a.size()[0]
    );
    assert!(worst_rho <= SPEARMAN_TOL && worst_ssim <= SSIM_TOL);
    // The crate's own numbers for the cascade are the ones compared.
    for (k, row) in r.spearman_abs.iter().enumerate() {
        for (i, &v) in row.iter().enumerate() {
            assert!((v - want_rho[k * 2 + i]).abs() <= SPEARMAN_TOL);
        }
    }
}

/// Adebayo et al.'s findings on the lab's images: an edge detector's maps
/// survive randomisation (they never saw the model), the vanilla gradient's
/// signed maps decorrelate as layers are randomised, and the model comes
/// back trained.
#[test]
fn edges_survive_randomisation_and_the_gradient_does_not() {
    let (x, y) = inputs(3);
    let model = model();
    let before = Vanilla.attribute(&model, &x, &y).unwrap().values;
    let cascade = |m: &dyn Method| Randomisation::default().run(&model, m, &x, &y).unwrap();
    let edges = cascade(&Edges);
    assert!(
        edges.spearman_abs.iter().flatten().all(|&v| v == 1.0),
        "{:?}",
        edges.spearman_abs
    );
    let vanilla = cascade(&Vanilla);
    let signed = RandomisationResult::means(&vanilla.spearman_signed);
    let abs = RandomisationResult::means(&vanilla.spearman_abs);
    println!("vanilla, cascading: Spearman signed {signed:.3?}, abs {abs:.3?}");
    assert!(signed[signed.len() - 1] < 0.1, "{signed:?}");
    assert!(abs[abs.len() - 1] < abs[0], "{abs:?}");
    let gbp = cascade(&GuidedBackprop);
    println!(
        "guided backprop, cascading: Spearman abs {:.3?}",
        RandomisationResult::means(&gbp.spearman_abs)
    );
    let independent = Randomisation {
        order: Order::Independent,
        seed: 3,
    }
    .run(&model, &Vanilla, &x, &y)
    .unwrap();
    assert_eq!(independent.layers, vanilla.layers);
    assert_eq!(
        vanilla.layers.first().map(String::as_str),
        Some("classifier.1")
    );
    assert_eq!(
        vanilla.layers.last().map(String::as_str),
        Some("features.0")
    );
    // The weights are back: the same gradient, bit for bit.
    assert!(Vanilla
        .attribute(&model, &x, &y)
        .unwrap()
        .values
        .equal(&before));
}

/// The noise tunnel's convergence: SmoothGrad with n and with 2n samples
/// agree more as n grows.
#[test]
fn the_tunnel_converges() {
    let (x, y) = inputs(2);
    let model = model();
    let cfg = SmoothGradConfig::default().with_batch_size(8);
    let rows = tunnel_convergence(&model, &Vanilla, &x, &y, &cfg, &[1, 4, 16]).unwrap();
    let means: Vec<f64> = rows
        .iter()
        .map(|r| r.iter().sum::<f64>() / r.len() as f64)
        .collect();
    println!("Spearman(n, 2n) for n = 1, 4, 16: {means:.3?}");
    assert!(means[0] < means[1] && means[1] < means[2], "{means:?}");
}

/// Bad input is named, not a panic.
#[test]
fn bad_maps_and_targets_are_named() {
    let (x, y) = inputs(1);
    let model = model();
    let m = CausalMetric::deletion();
    let msg = m
        .curves(
            &model,
            &x,
            &Tensor::zeros([1, 10, 10], (tch::Kind::Float, tch::Device::Cpu)),
            &y,
        )
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[1, 224, 224]") && msg.contains("[1, 10, 10]"),
        "{msg}"
    );
    let maps = Tensor::zeros([1, 224, 224], (tch::Kind::Float, tch::Device::Cpu));
    let msg = m
        .curves(&model, &x, &maps, &[1000])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("1000"), "{msg}");
    let msg = m
        .clone()
        .with_step(0)
        .curves(&model, &x, &maps, &y)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("step"), "{msg}");
}
