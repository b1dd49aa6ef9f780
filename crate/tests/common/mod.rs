//! Shared by the integration tests: the lab's data and weights (found through
//! `saliency_lab::assets`, so a missing file fails loudly), and reference
//! values made by `scripts/reference.py` with PyTorch, torchvision and scipy.
//!
//! Tolerance policy (one for the whole suite):
//! - against PyTorch on the same weights and inputs: the relative L2 error
//!   `|a - b| / |b|` of each image's tensor is at most [`REL_TOL`] (1e-4), and
//!   scores differ by at most [`SCORE_ABS_TOL`] (1e-3);
//! - against the lab's printed scores (made with the original fp32 `.pth`,
//!   see `shared/models/PROVENANCE.md`): [`LAB_SCORE_TOL`] (0.02);
//! - images (`u8`): at most one grey level.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, ReadableElement};
use saliency_lab::{assets, ImagenetVal, Model};

pub const REL_TOL: f64 = 1e-4;
pub const SCORE_ABS_TOL: f64 = 1e-3;
pub const LAB_SCORE_TOL: f64 = 0.02;

/// The correct-class scores printed in the original lab.
pub const LAB_SCORES: [f64; 25] = [
    24.1313, 25.1475, 38.8825, 25.4514, 30.2723, 25.4353, 15.6568, 34.9214, 22.9094, 13.7762,
    18.1419, 10.5448, 23.5066, 46.3714, 39.0091, 27.1299, 25.8614, 19.7288, 18.6807, 20.9641,
    25.2686, 18.7046, 21.7245, 12.6422, 15.0523,
];

pub fn data() -> ImagenetVal {
    let path = assets::data_path().unwrap_or_else(|e| panic!("the lab's data is required: {e}"));
    saliency_lab::load_imagenet_val(path).expect("load imagenet_val_25.npz")
}

pub fn model() -> Model {
    let path = assets::weights_path().unwrap_or_else(|e| panic!("the weights are required: {e}"));
    saliency_lab::squeezenet1_1(path, tch::Device::Cpu).expect("load SqueezeNet 1.1")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The venv's Python (set-up's), where torch, torchvision and scipy are.
pub fn python() -> PathBuf {
    std::env::var_os("SALIENCY_LAB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| assets::home().join("venv/bin/python"))
}

/// The folder of reference values, made by `scripts/reference.py` when its
/// inputs (the script, the data, the weights) changed since the last run.
pub fn reference_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| make_reference("reference.py"))
}

/// The folder of Captum's attributions, made by
/// `scripts/reference_methods.py` when its inputs changed.
pub fn methods_reference_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| make_reference("reference_methods.py"))
}

/// The folder of Captum's and Zennit's propagation attributions, made by
/// `scripts/reference_propagation.py` when its inputs changed.
pub fn propagation_reference_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| make_reference("reference_propagation.py"))
}

/// Runs `scripts/<script> --data D --weights W --out DIR` unless DIR holds
/// the output of the same script, data and weights already.
fn make_reference(script: &str) -> PathBuf {
    let stem = script.trim_end_matches(".py");
    let scripts = repo_root().join("scripts");
    let script = scripts.join(script);
    let (data, weights) = (
        assets::data_path().expect("data"),
        assets::weights_path().expect("weights"),
    );
    // reference.py and reference_methods.py are imported by the other
    // scripts: a change to them counts.
    let imported = [
        scripts.join("reference.py"),
        scripts.join("reference_methods.py"),
    ];
    let stamp: String = [&script, &imported[0], &imported[1], &data, &weights]
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            format!("{} {} {:?}\n", p.display(), m.len(), m.modified().ok())
        })
        .collect();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(stem);
    if std::fs::read_to_string(dir.join("STAMP")).ok().as_deref() == Some(stamp.as_str()) {
        return dir;
    }
    let fresh = tmp.join(format!("{stem}-{}", std::process::id()));
    let status = std::process::Command::new(python())
        .arg(&script)
        .arg("--data")
        .arg(&data)
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(&fresh)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {} (run scripts/setup): {e}", python().display()));
    assert!(status.success(), "{} failed", script.display());
    std::fs::write(fresh.join("STAMP"), &stamp).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    match std::fs::rename(&fresh, &dir) {
        Ok(()) => dir,
        Err(_) => fresh, // another test process won the race
    }
}

pub fn reference<T: ReadableElement>(name: &str) -> ArrayD<T> {
    read_npy(&reference_dir().join(name))
}

/// One of Captum's reference attributions (see [`methods_reference_dir`]).
pub fn captum(name: &str) -> ArrayD<f32> {
    read_npy(&methods_reference_dir().join(format!("{name}.npy")))
}

pub fn read_npy<T: ReadableElement>(path: &Path) -> ArrayD<T> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ArrayD::<T>::read_npy(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The largest relative L2 error over the first axis (one entry per image).
pub fn max_rel_error(got: &ArrayD<f32>, want: &ArrayD<f32>) -> f64 {
    assert_eq!(got.shape(), want.shape(), "shapes differ");
    let n = want.shape()[0];
    (0..n)
        .map(|i| {
            let (g, w) = (
                got.index_axis(ndarray::Axis(0), i),
                want.index_axis(ndarray::Axis(0), i),
            );
            let diff: f64 = g
                .iter()
                .zip(w.iter())
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum();
            let norm: f64 = w.iter().map(|b| f64::from(*b).powi(2)).sum();
            (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
        })
        .fold(0.0, f64::max)
}

pub fn array(t: &tch::Tensor) -> ArrayD<f32> {
    saliency_lab::convert::to_array_f32(t).expect("tensor to array")
}
