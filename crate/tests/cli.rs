//! The `maps` command-line tool, run as a user would.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use ndarray::{ArrayD, Axis};
use ndarray_npy::ReadNpyExt;

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn maps(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_maps"))
        .args(args)
        .output()
        .expect("run maps");
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn npy<T: ndarray_npy::ReadableElement>(dir: &Path, name: &str) -> ArrayD<T> {
    ArrayD::<T>::read_npy(std::fs::File::open(dir.join(name)).unwrap()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
#[ignore = "needs the venv's Python with torch (scripts/test runs it)"]
fn npz_vanilla_writes_the_five_arrays_equal_to_pytorch() {
    let data = saliency_lab::assets::data_path().unwrap();
    let dir = out_dir("vanilla");
    assert!(maps(&[
        "--npz",
        s(&data),
        "--method",
        "vanilla",
        "--device",
        "cpu",
        "--out",
        s(&dir)
    ])
    .status
    .success());
    let grad = npy::<f32>(&dir, "grad.npy");
    assert_eq!(grad.shape(), &[25, 3, 224, 224]);
    assert!(max_rel_error(&grad, &reference::<f32>("grad.npy")) <= REL_TOL);
    assert_eq!(npy::<f32>(&dir, "max.npy").shape(), &[25, 224, 224]);
    assert!(
        max_rel_error(
            &npy::<f32>(&dir, "maxabs.npy"),
            &reference::<f32>("maxabs.npy")
        ) <= REL_TOL
    );
    assert_eq!(npy::<f32>(&dir, "scores.npy").shape(), &[25, 1000]);
    assert_eq!(
        npy::<i64>(&dir, "targets.npy").as_slice().unwrap(),
        data_labels().as_slice()
    );
}

fn data_labels() -> Vec<i64> {
    data().labels
}

/// Saves lab image `i` as a PNG of another size and colour type.
fn write_png(i: usize, name: &str, w: u32, h: u32, kind: &str) -> PathBuf {
    let d = data();
    let rgb = saliency_lab::transforms::array_to_rgb_image(d.image(i).unwrap()).unwrap();
    let img = image::DynamicImage::ImageRgb8(rgb).resize_exact(
        w,
        h,
        image::imageops::FilterType::Triangle,
    );
    let img = match kind {
        "gray" => image::DynamicImage::ImageLuma8(img.to_luma8()),
        "rgba" => image::DynamicImage::ImageRgba8(img.to_rgba8()),
        _ => img,
    };
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    img.save(&path).unwrap();
    path
}

#[test]
fn image_files_of_any_size_and_colour_type() {
    let gray = write_png(0, "gray.png", 300, 200, "gray");
    let rgba = write_png(1, "rgba.png", 150, 400, "rgba");
    let dir = out_dir("images");
    let out = maps(&[
        "--image",
        s(&gray),
        s(&rgba),
        "--method",
        "smoothgrad",
        "--samples",
        "3",
        "--batch",
        "2",
        "--device",
        "cpu",
        "--out",
        s(&dir),
    ]);
    assert!(out.status.success());
    assert_eq!(npy::<f32>(&dir, "grad.npy").shape(), &[2, 3, 224, 224]);
    let scores = npy::<f32>(&dir, "scores.npy");
    let targets = npy::<i64>(&dir, "targets.npy");
    // No labels: the default target is the top-1 class.
    for (row, &t) in scores.axis_iter(Axis(0)).zip(targets.iter()) {
        let best = row
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m })
            .0;
        assert_eq!(best as i64, t);
    }
    // --target overrides, for every method.
    let dir = out_dir("target");
    for method in ["vanilla", "smoothgrad-sq", "vargrad", "blur-average"] {
        let out = maps(&[
            "--image",
            s(&rgba),
            "--method",
            method,
            "--samples",
            "2",
            "--target",
            "7",
            "--device",
            "cpu",
            "--out",
            s(&dir),
        ]);
        assert!(out.status.success(), "{method}");
        assert_eq!(npy::<i64>(&dir, "targets.npy").as_slice().unwrap(), &[7]);
        assert_eq!(npy::<f32>(&dir, "maxabs.npy").shape(), &[1, 224, 224]);
    }
    assert!(npy::<f32>(&dir, "maxabs.npy").iter().all(|&v| v >= 0.0));
}

#[test]
fn errors_are_one_line_and_a_failure_code() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nope.png");
    let out = maps(&["--image", s(&missing), "--out", s(&out_dir("err"))]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("maps: error: ") && err.contains("nope.png"),
        "{err}"
    );
    let rgba = write_png(1, "rgba2.png", 224, 224, "rgba");
    let out = maps(&[
        "--image",
        s(&rgba),
        "--method",
        "smoothgrad",
        "--samples",
        "0",
        "--out",
        s(&out_dir("err")),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("samples = 0"));
    // A device that is not there: one line that says why.
    let run_on = |device: &str| {
        let out = maps(&[
            "--image",
            s(&rgba),
            "--device",
            device,
            "--out",
            s(&out_dir("err")),
        ]);
        assert_eq!(out.status.code(), Some(1), "{device}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run_on("gpu");
    assert!(err.contains("expected cpu, cuda, cuda:N or auto"), "{err}");
    let err = run_on("cuda:99");
    assert!(
        err.contains("CUDA device(s) here") || err.contains("no CUDA back end"),
        "{err}"
    );
}

fn peak_rss(out: &Output) -> f64 {
    let text = String::from_utf8_lossy(&out.stdout);
    let tail = text
        .split("peak RSS ")
        .nth(1)
        .unwrap_or_else(|| panic!("no stats in {text}"));
    tail.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn smoothgrad_batches_bound_peak_memory() {
    // 50 samples of one image: batches of 8 vs all 50 at once. Reported in
    // the README (peak RSS of the whole process, libtorch included).
    let img = write_png(2, "mem.png", 224, 224, "rgb");
    let run = |batch: &str| {
        let out = maps(&[
            "--image",
            s(&img),
            "--method",
            "smoothgrad",
            "--samples",
            "50",
            "--batch",
            batch,
            "--device",
            "cpu",
            "--stats",
            "--out",
            s(&out_dir(&format!("mem{batch}"))),
        ]);
        assert!(out.status.success());
        peak_rss(&out)
    };
    let (small, whole) = (run("8"), run("50"));
    eprintln!("peak RSS: --batch 8: {small:.0} MiB, --batch 50: {whole:.0} MiB");
    assert!(
        small < 0.6 * whole,
        "batch 8 peak {small} MiB vs batch 50 {whole} MiB"
    );
}

/// Every method from the command line, on two image files: `attr.npy` of
/// the method's shape, the summaries, and `grad.npy` only for the gradient
/// methods.
#[test]
fn every_method_writes_its_attribution() {
    let a = write_png(3, "m3.png", 256, 224, "rgb");
    let b = write_png(4, "m4.png", 224, 300, "rgb");
    for (method, extra, channels, grad) in [
        ("vanilla", &[][..], 3, true),
        ("input-x-gradient", &[][..], 3, false),
        ("integrated-gradients", &["--steps", "4"][..], 3, false),
        ("guided-backprop", &[][..], 3, false),
        ("deconvolution", &[][..], 3, false),
        ("grad-cam", &["--layer", "features.9"][..], 1, false),
        ("guided-grad-cam", &[][..], 3, false),
        (
            "occlusion",
            &["--window", "112", "--stride", "112"][..],
            3,
            false,
        ),
        ("deeplift", &["--baseline", "black"][..], 3, false),
        ("deeplift-shap", &[][..], 3, false),
        (
            "gradient-shap",
            &["--samples", "2", "--stdev", "0.1"][..],
            3,
            false,
        ),
        ("lrp", &["--rule", "epsilon-gamma-box"][..], 3, false),
        ("smoothgrad", &["--samples", "2"][..], 3, true),
        (
            "lrp",
            &["--tunnel", "smoothgrad", "--samples", "2"][..],
            3,
            false,
        ),
        (
            "vanilla",
            &["--tunnel", "vargrad", "--samples", "2"][..],
            3,
            true,
        ),
        ("vanilla", &["--numerics", "pytorch"][..], 3, true),
        (
            "input-x-gradient",
            &["--tunnel", "vargrad", "--samples", "2"][..],
            3,
            false,
        ),
    ] {
        let dir = out_dir(&format!("m-{method}-{}", extra.len()));
        let mut argv = vec![
            "--image",
            s(&a),
            s(&b),
            "--method",
            method,
            "--device",
            "cpu",
        ];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["--out", s(&dir)]);
        let out = maps(&argv);
        assert!(out.status.success(), "{method} {extra:?}");
        assert_eq!(
            npy::<f32>(&dir, "attr.npy").shape(),
            &[2, channels, 224, 224],
            "{method}"
        );
        assert_eq!(
            npy::<f32>(&dir, "maxabs.npy").shape(),
            &[2, 224, 224],
            "{method}"
        );
        assert_eq!(dir.join("grad.npy").exists(), grad, "{method} {extra:?}");
    }
    let out = maps(&[
        "--image",
        s(&a),
        "--method",
        "blur-average",
        "--tunnel",
        "smoothgrad",
        "--out",
        s(&out_dir("bad")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tunnel"));
}

/// `maps evaluate` writes the curves, the randomisation table and
/// `metrics.json` (JSON, with one entry per image and the means), and
/// prints a summary.
#[test]
fn evaluate_writes_the_metrics_as_json() {
    let a = write_png(5, "e5.png", 224, 224, "rgb");
    let b = write_png(6, "e6.png", 240, 224, "rgb");
    let dir = out_dir("evaluate");
    let out = maps(&[
        "evaluate",
        "--image",
        s(&a),
        s(&b),
        "--metric",
        "deletion",
        "insertion",
        "randomisation",
        "--step",
        "2240",
        "--device",
        "cpu",
        "--out",
        s(&dir),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("deletion AUC: mean"));
    assert_eq!(npy::<f32>(&dir, "deletion.npy").shape(), &[2, 24]);
    let text = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["method"], "vanilla");
    assert_eq!(json["target"], "top1");
    assert_eq!(json["layers"].as_array().unwrap().len(), 10);
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for image in images {
        let auc = image["deletion_auc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auc), "{auc}");
        assert_eq!(image["randomisation"]["ssim"].as_array().unwrap().len(), 10);
    }
    assert!(json["mean"]["insertion_auc"].as_f64().is_some());
}

/// Class sensitivity from the command line: a CSV row per image with both
/// classes, and "undefined: constant map" where a map is constant (one
/// occlusion window over the whole image), never NaN, in the CSV, the
/// table and (as null) the JSON.
#[test]
fn class_sensitivity_writes_a_row_per_image_and_says_where_it_is_undefined() {
    let a = write_png(7, "s7.png", 224, 224, "rgb");
    let b = write_png(8, "s8.png", 240, 224, "rgb");
    for (method, extra, defined) in [
        ("lrp", &["--rule", "zplus"][..], true),
        (
            "occlusion",
            &["--window", "224", "--stride", "224"][..],
            false,
        ),
    ] {
        let dir = out_dir(&format!("sensitivity-{method}"));
        let mut argv = vec![
            "evaluate",
            "--image",
            s(&a),
            s(&b),
            "--method",
            method,
            "--metric",
            "class-sensitivity",
            "--other",
            "runner-up",
            "--device",
            "cpu",
            "--out",
            s(&dir),
        ];
        argv.extend_from_slice(extra);
        let out = maps(&argv);
        assert!(out.status.success(), "{method}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let csv = std::fs::read_to_string(dir.join("class_sensitivity.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(
            rows[0],
            "image,target,other,spearman_abs,spearman_signed,ssim"
        );
        assert_eq!(rows.len(), 3, "{csv}");
        assert!(
            !csv.contains("NaN") && !stdout.contains("NaN"),
            "{csv}\n{stdout}"
        );
        let text = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = &json["images"][0]["class_sensitivity"];
        assert_ne!(first["target"], first["other"]);
        assert_eq!(json["mean"]["class_sensitivity"]["other"], "runner-up");
        if defined {
            let rho: f64 = rows[1].split(',').nth(3).unwrap().parse().unwrap();
            assert!((-1.0..=1.0).contains(&rho), "{csv}");
            assert!(first["spearman_abs"].as_f64().is_some());
        } else {
            assert!(rows[1].contains("undefined: constant map"), "{csv}");
            assert!(stdout.contains("undefined: constant map"), "{stdout}");
            assert!(first["spearman_abs"].is_null());
        }
    }
}

/// On image files the command line's attributions equal Captum's (Zennit's
/// for LRP) on the same preprocessed inputs and targets (`maps
/// --save-input`, then `scripts/reference_methods.py --inputs`, or
/// `reference_propagation.py`).
#[test]
#[ignore = "needs the venv's Python with Captum and Zennit (scripts/test runs it)"]
fn methods_on_image_files_equal_captums() {
    let a = write_png(5, "c5.png", 320, 240, "rgb");
    let b = write_png(6, "c6.png", 224, 224, "rgba");
    let weights = saliency_lab::assets::weights_path().unwrap();
    const METHODS: &str = "reference_methods.py";
    const PROPAGATION: &str = "reference_propagation.py";
    // (maps's method and flags, the reference script and its name for the
    // method, tolerance)
    let cases: [(&str, &[&str], &str, &str, f64); 12] = [
        ("input-x-gradient", &[], METHODS, "ixg", REL_TOL),
        ("guided-backprop", &[], METHODS, "gbp", REL_TOL),
        ("deconvolution", &[], METHODS, "deconv", REL_TOL),
        ("grad-cam", &[], METHODS, "gradcam", REL_TOL),
        ("guided-grad-cam", &[], METHODS, "ggc", REL_TOL),
        (
            "occlusion",
            &["--window", "56", "--stride", "28", "--batch", "16"],
            METHODS,
            "occlusion",
            REL_TOL,
        ),
        // The default NHWC path: float order at flat regions (tests/methods.rs).
        ("integrated-gradients", &[], METHODS, "ig", 1e-2),
        ("deeplift", &[], PROPAGATION, "deeplift", REL_TOL),
        ("lrp", &[], PROPAGATION, "lrp_epsilon-plus", REL_TOL),
        (
            "lrp",
            &["--rule", "epsilon"],
            PROPAGATION,
            "lrp_epsilon",
            REL_TOL,
        ),
        (
            "lrp",
            &["--rule", "alpha2-beta1"],
            PROPAGATION,
            "lrp_alpha2-beta1",
            REL_TOL,
        ),
        (
            "lrp",
            &["--rule", "epsilon-gamma-box"],
            PROPAGATION,
            "lrp_epsilon-gamma-box",
            REL_TOL,
        ),
    ];
    for (method, extra, script, name, tol) in cases {
        let dir = out_dir(&format!("captum-{name}"));
        let mut argv = vec![
            "--image",
            s(&a),
            s(&b),
            "--method",
            method,
            "--device",
            "cpu",
            "--save-input",
        ];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&["--out", s(&dir)]);
        assert!(maps(&argv).status.success(), "{method}");
        let status = Command::new(python())
            .arg(repo_root().join("scripts").join(script))
            .args([
                "--inputs",
                s(&dir.join("input.npy")),
                "--targets",
                s(&dir.join("targets.npy")),
            ])
            .args([
                "--weights",
                s(&weights),
                "--out",
                s(&dir.join("captum")),
                "--methods",
                name,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "{script} {name}");
        let got = npy::<f32>(&dir, "attr.npy");
        let want = npy::<f32>(&dir.join("captum"), &format!("{name}.npy"));
        let err = max_rel_error(&got, &want);
        println!("{method} on image files: relative error {err:.2e}");
        assert!(err <= tol, "{method}: {err:.2e} > {tol:.0e}");
    }
}

/// A photograph the lab does not have: lab image `i` mirrored and cropped.
fn write_unseen(i: usize, name: &str) -> PathBuf {
    let d = data();
    let rgb = saliency_lab::transforms::array_to_rgb_image(d.image(i).unwrap()).unwrap();
    let img = image::DynamicImage::ImageRgb8(rgb)
        .fliph()
        .crop_imm(20, 10, 190, 210);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    img.save(&path).unwrap();
    path
}

#[test]
fn fool_and_visualise_write_their_arrays_and_figures() {
    let a = write_unseen(3, "unseen3.png");
    let b = write_unseen(8, "unseen8.jpg");
    let dir = out_dir("fool");
    let out = maps(&[
        "fool",
        "--image",
        s(&a),
        s(&b),
        "--target",
        "6",
        "113",
        "--device",
        "cpu",
        "--out",
        s(&dir),
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("-> 6 (stingray) in") && stdout.contains("-> 113 (snail) in"),
        "{stdout}"
    );
    assert!(stdout.contains("2 of 2 image(s) fooled"), "{stdout}");
    assert_eq!(npy::<f32>(&dir, "fooled.npy").shape(), &[2, 3, 224, 224]);
    assert_eq!(npy::<f32>(&dir, "input.npy").shape(), &[2, 3, 224, 224]);
    let steps = npy::<i64>(&dir, "steps.npy");
    assert!(steps.iter().all(|&k| (1..=100).contains(&k)), "{steps:?}");
    assert_eq!(
        npy::<i64>(&dir, "targets.npy").as_slice().unwrap(),
        &[6, 113]
    );
    let png = image::open(dir.join("fooled.png")).unwrap();
    assert_eq!((png.width() > 700, png.height() > 380), (true, true));

    let dir = out_dir("visualise");
    let out = maps(&[
        "visualise",
        "--target",
        "76",
        "--seed",
        "3",
        "--steps",
        "15",
        "--device",
        "cpu",
        "--out",
        s(&dir),
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class 76 (tarantula): score"), "{stdout}");
    assert_eq!(npy::<f32>(&dir, "visual.npy").shape(), &[1, 3, 224, 224]);
    let scores = npy::<f32>(&dir, "scores.npy");
    assert_eq!(scores.shape(), &[1, 15]);
    assert!(scores[[0, 14]] > scores[[0, 0]] + 10.0, "{scores:?}");
    assert_eq!(npy::<i64>(&dir, "jitter.npy").shape(), &[1, 15, 2]);
    assert!(dir.join("visual.png").exists() && dir.join("noise.npy").exists());
}

#[test]
fn fool_and_visualise_refuse_bad_classes_and_files() {
    let a = write_unseen(3, "unseen3b.png");
    let not_an_image = Path::new(env!("CARGO_TARGET_TMPDIR")).join("notes.png");
    std::fs::write(&not_an_image, "these are my notes, not a picture").unwrap();
    let dir = out_dir("fool-err");
    for (args, says) in [
        (
            vec!["fool", "--image", s(&a), "--target", "1000"],
            "--target = 1000",
        ),
        (
            vec!["fool", "--image", s(&a), "--target", "-3"],
            "--target = -3",
        ),
        (
            vec!["fool", "--image", s(&not_an_image), "--target", "1"],
            "notes.png",
        ),
        (
            vec!["fool", "--image", s(&a), s(&a), s(&a), "--target", "1", "2"],
            "one per image (3)",
        ),
        (
            vec!["visualise", "--target", "5", "1000"],
            "--target = 1000",
        ),
        (
            vec!["visualise", "--target", "5", "--max-jitter", "300"],
            "max_jitter = 300",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--out", s(&dir)]);
        let out = maps(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("maps: error: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

#[test]
#[ignore = "needs the venv's Python with torch (scripts/test runs it)"]
fn fool_and_visualise_equal_cs231n_s_on_image_files() {
    let a = write_unseen(14, "unseen14.png");
    let b = write_unseen(19, "unseen19.png");
    let dir = out_dir("fool-ref");
    assert!(maps(&[
        "fool",
        "--image",
        s(&a),
        s(&b),
        "--target",
        "340",
        "--device",
        "cpu",
        "--out",
        s(&dir)
    ])
    .status
    .success());
    let script = repo_root().join("scripts/reference_synthesis.py");
    let weights = saliency_lab::assets::weights_path().unwrap();
    let reference = |args: &[&str]| {
        let status = Command::new(python())
            .arg(&script)
            .args(args)
            .args(["--weights", s(&weights)])
            .status()
            .expect("run the venv's python");
        assert!(status.success(), "{args:?}");
    };
    let ref_dir = dir.join("ref");
    reference(&[
        "fool",
        "--inputs",
        s(&dir.join("input.npy")),
        "--targets",
        s(&dir.join("targets.npy")),
        "--out",
        s(&ref_dir),
    ]);
    assert_eq!(
        npy::<i64>(&dir, "steps.npy"),
        npy::<i64>(&ref_dir, "steps.npy")
    );
    let err = max_rel_error(&npy(&dir, "fooled.npy"), &npy(&ref_dir, "fooled.npy"));
    assert!(err <= REL_TOL, "{err}");

    let dir = out_dir("visualise-ref");
    assert!(maps(&[
        "visualise",
        "--target",
        "130",
        "--seed",
        "9",
        "--steps",
        "30",
        "--device",
        "cpu",
        "--out",
        s(&dir)
    ])
    .status
    .success());
    let ref_dir = dir.join("ref");
    reference(&[
        "visualise",
        "--noise",
        s(&dir.join("noise.npy")),
        "--jitter",
        s(&dir.join("jitter.npy")),
        "--targets",
        s(&dir.join("targets.npy")),
        "--steps",
        "30",
        "--out",
        s(&ref_dir),
    ]);
    let err = max_rel_error(&npy(&dir, "visual.npy"), &npy(&ref_dir, "visual.npy"));
    assert!(err <= REL_TOL, "{err}");
    let (got, want) = (
        npy::<f32>(&dir, "scores.npy"),
        npy::<f32>(&ref_dir, "scores.npy"),
    );
    assert!(got
        .iter()
        .zip(want.iter())
        .all(|(g, w)| f64::from((g - w).abs()) <= SCORE_ABS_TOL));
}
