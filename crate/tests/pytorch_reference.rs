//! The crate against PyTorch, torchvision and scipy running the lab's own code
//! (`scripts/reference.py`) on the same weights and images, and against the
//! numbers printed in the original lab. Tolerances: see `common/mod.rs`.

mod common;

use common::*;
use ndarray::{Array3, Axis};
use saliency_lab::attribution::{self, LAB_SIGMAS};
use saliency_lab::{blur_image, deprocess, gather_scores, preprocess, preprocess_batch, top1};

#[test]
fn data_matches_the_npz_as_numpy_reads_it() {
    let d = data();
    assert_eq!(d.images.shape(), &[25, 224, 224, 3]);
    assert_eq!(d.labels.len(), 25);
    assert_eq!(d.class_names.len(), 1000);
    assert_eq!(d.class_names[0], "tench, Tinca tinca");
    assert_eq!(
        d.class_names[999],
        "toilet tissue, toilet paper, bathroom tissue"
    );
    // The lab's label_map lacks 134 (the bird "crane"; 517 is the machine).
    assert_eq!(d.class_names[134], "class 134");
    assert_eq!(d.title(1).unwrap(), "quail");
    assert_eq!(d.title(2).unwrap(), "Tibetan mastiff");
    assert_eq!(d.labels[..5], [958, 85, 244, 182, 294]);
}

#[test]
#[ignore = "needs the venv's Python with torch, torchvision and scipy (scripts/test runs it)"]
fn preprocess_equals_torchvision() {
    let d = data();
    let want = reference::<f32>("x.npy");
    let batch = array(&preprocess_batch(d.images.view()).unwrap());
    assert!(max_rel_error(&batch, &want) <= 1e-6);
    // One image through the lab's per-image `preprocess(Image.fromarray(x))`.
    let one = array(&preprocess(d.image(3).unwrap(), 224).unwrap());
    let want3 = want.index_axis(Axis(0), 3).insert_axis(Axis(0)).to_owned();
    assert!(max_rel_error(&one, &want3) <= 1e-6);
}

#[test]
#[ignore = "needs the venv's Python with torch, torchvision and scipy (scripts/test runs it)"]
fn scores_equal_pytorch_and_the_lab() {
    let d = data();
    let model = model();
    let scores = model
        .scores(&preprocess_batch(d.images.view()).unwrap())
        .unwrap();
    let want = reference::<f32>("scores.npy");
    let got = array(&scores);
    let max_abs = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        f64::from(max_abs) <= SCORE_ABS_TOL,
        "scores differ from PyTorch by {max_abs}"
    );

    let correct = Vec::<f32>::try_from(&gather_scores(&scores, &d.labels).unwrap()).unwrap();
    for (i, (&got, &lab)) in correct.iter().zip(LAB_SCORES.iter()).enumerate() {
        assert!(
            (f64::from(got) - lab).abs() <= LAB_SCORE_TOL,
            "image {i}: {got} vs the lab's {lab}"
        );
    }

    let want_top1: Vec<i64> = want
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m })
                .0 as i64
        })
        .collect();
    let got_top1 = top1(&scores).unwrap();
    assert_eq!(got_top1, want_top1);
    let right = got_top1
        .iter()
        .zip(&d.labels)
        .filter(|(a, b)| a == b)
        .count();
    assert_eq!(right, 13, "PROVENANCE.md: top-1 13/25");
}

#[test]
#[ignore = "needs the venv's Python with torch, torchvision and scipy (scripts/test runs it)"]
fn vanilla_gradient_and_summaries_equal_pytorch() {
    let d = data();
    let model = model();
    let x = preprocess_batch(d.images.view()).unwrap();
    let grad = attribution::vanilla_gradient(&model, &x, &d.labels).unwrap();
    assert_eq!(grad.size(), [25, 3, 224, 224]);
    for (name, got) in [
        ("grad.npy", grad.shallow_clone()),
        ("max.npy", attribution::max(&grad).unwrap()),
        ("maxabs.npy", attribution::max_abs(&grad).unwrap()),
    ] {
        let err = max_rel_error(&array(&got), &reference::<f32>(name));
        assert!(
            err <= REL_TOL,
            "{name}: relative error {err:e} > {REL_TOL:e}"
        );
    }
    // The lab prints saliency_max[2]; its corner values (PyTorch 1.x, fp32
    // .pth weights) agree to the weights' fp16 precision.
    let m = attribution::max(&grad).unwrap();
    assert_eq!(m.double_value(&[2, 0, 223]), 0.0);
    assert!((m.double_value(&[2, 0, 0]) - -5.6959433e-04).abs() < 2e-4);
}

#[test]
#[ignore = "needs the venv's Python with torch, torchvision and scipy (scripts/test runs it)"]
fn deprocess_equals_torchvision_and_inverts_preprocess() {
    let d = data();
    let want = reference::<u8>("deprocess.npy"); // [rescale?][image][H][W][3]
    let x = preprocess_batch(d.images.view()).unwrap();
    for (r, should_rescale) in [false, true].into_iter().enumerate() {
        for i in 0..3 {
            let got = deprocess(&x.narrow(0, i as i64, 1), should_rescale).unwrap();
            let w = want
                .index_axis(Axis(0), r)
                .index_axis(Axis(0), i)
                .to_owned();
            let worst = got
                .iter()
                .zip(w.iter())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(
                worst <= 1,
                "image {i}, rescale {should_rescale}: off by {worst} grey levels"
            );
            if !should_rescale {
                let orig = d.image(i).unwrap();
                let worst = got
                    .iter()
                    .zip(orig.iter())
                    .map(|(a, b)| a.abs_diff(*b))
                    .max()
                    .unwrap();
                assert!(worst <= 1, "deprocess(preprocess(x)) off by {worst}");
            }
        }
    }
}

#[test]
#[ignore = "needs the venv's Python with torch, torchvision and scipy (scripts/test runs it)"]
fn blur_image_equals_scipy_gaussian_filter1d() {
    // uint8, the lab's way (image 2, sigma 1, 3, 9, 27): bit-exact.
    let d = data();
    let want = reference::<u8>("blur_u8.npy");
    for (k, &s) in LAB_SIGMAS.iter().enumerate() {
        let got = blur_image(d.image(2).unwrap(), s).unwrap();
        let w = want.index_axis(Axis(0), k);
        let differ = got.iter().zip(w.iter()).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "sigma {s}: {differ} pixels differ from scipy");
    }
    // float32, sigma 0.7 and 5 on a 40 x 30 x 3 array (radius 20 > 15 wraps twice).
    let input: Array3<f32> = reference::<f32>("blur_f32_in.npy")
        .into_dimensionality()
        .unwrap();
    let want = reference::<f32>("blur_f32.npy");
    for (k, s) in [0.7, 5.0].into_iter().enumerate() {
        let got = blur_image(input.view(), s)
            .unwrap()
            .into_dyn()
            .insert_axis(Axis(0));
        let w = want.index_axis(Axis(0), k).to_owned().insert_axis(Axis(0));
        let err = max_rel_error(&got, &w);
        assert!(err <= 1e-6, "sigma {s}: relative error {err:e}");
    }
}

#[test]
#[ignore = "needs the venv's Python with torch, torchvision and scipy (scripts/test runs it)"]
fn blur_average_equals_the_labs_sample_answer() {
    let d = data();
    let model = model();
    let b =
        attribution::blur_average(&model, d.image(2).unwrap(), d.labels[2], &LAB_SIGMAS).unwrap();
    assert_eq!(b.titles, ["Original", "σ=1", "σ=3", "σ=9", "σ=27"]);
    assert_eq!(b.maps.size(), [5, 224, 224]);
    let got = array(&b.average).insert_axis(Axis(0));
    let want = reference::<f32>("blur_avg2.npy").insert_axis(Axis(0));
    let err = max_rel_error(&got, &want);
    assert!(err <= REL_TOL, "relative error {err:e}");
}

/// `pretty` prints as PyTorch prints (`str(tensor)` with
/// `torch.set_printoptions`' defaults): the lab's printed tensors and
/// tensors of each notation, character for character.
#[test]
#[ignore = "needs the venv's Python with torch (scripts/test runs it)"]
fn pretty_prints_as_pytorch_prints() {
    for name in [
        "scores",
        "scores_y",
        "saliency_max",
        "saliency",
        "labels",
        "small",
        "tiny",
        "wide",
        "whole",
        "whole_wide",
        "huge",
        "zeros",
        "special",
        "row",
        "long_row",
        "cube",
    ] {
        let want =
            std::fs::read_to_string(reference_dir().join(format!("print_{name}.txt"))).unwrap();
        let path = reference_dir().join(format!("print_{name}.npy"));
        let t = if name == "labels" {
            let a = read_npy::<i64>(&path);
            tch::Tensor::from_slice(a.as_slice().unwrap())
        } else {
            let a = read_npy::<f32>(&path);
            let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
            tch::Tensor::from_slice(a.as_slice().unwrap()).view(shape.as_slice())
        };
        assert_eq!(saliency_lab::convert::pretty(&t), want, "{name}");
    }
}
