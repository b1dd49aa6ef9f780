//! Bad input gives a typed error naming the file, shape or value, never a
//! panic (a panic in a notebook cell loses the student's variables).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use ndarray::{Array1, Array3, Array4};
use saliency_lab::attribution::{self, SmoothGradConfig};
use saliency_lab::{load_imagenet_val, preprocess, preprocess_batch, squeezenet1_1, Error};
use tch::{Device, Kind, Tensor};

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("errors");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The real npz's `label_map.npy` member, raw.
fn label_map_bytes() -> Vec<u8> {
    let f = std::fs::File::open(saliency_lab::assets::data_path().unwrap()).unwrap();
    let mut zip = zip::ZipArchive::new(f).unwrap();
    let mut m = zip.by_name("label_map.npy").unwrap();
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut m, &mut v).unwrap();
    v
}

/// An npz with the given X and y and the real label_map.
fn write_npz<A: ndarray_npy::WritableElement, B: ndarray_npy::WritableElement>(
    name: &str,
    x: &ndarray::ArrayD<A>,
    y: &ndarray::ArrayD<B>,
) -> PathBuf {
    use ndarray_npy::WriteNpyExt;
    let path = tmp(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    x.write_npy(&mut xb).unwrap();
    y.write_npy(&mut yb).unwrap();
    for (member, bytes) in [
        ("X.npy", xb),
        ("y.npy", yb),
        ("label_map.npy", label_map_bytes()),
    ] {
        zip.start_file(member, opts).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
    path
}

fn msg<T: std::fmt::Debug>(r: saliency_lab::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn corrupt_and_truncated_npz_name_the_file() {
    let bad = tmp("garbage.npz");
    std::fs::write(&bad, b"this is not a zip file").unwrap();
    let m = msg(load_imagenet_val(&bad));
    assert!(
        m.contains("garbage.npz") && m.contains("not a valid npz"),
        "{m}"
    );

    let real = std::fs::read(saliency_lab::assets::data_path().unwrap()).unwrap();
    let cut = tmp("truncated.npz");
    std::fs::write(&cut, &real[..real.len() / 2]).unwrap();
    let m = msg(load_imagenet_val(&cut));
    assert!(m.contains("truncated.npz"), "{m}");

    let m = msg(load_imagenet_val(tmp("does-not-exist.npz")));
    assert!(m.contains("does-not-exist.npz"), "{m}");
}

#[test]
fn wrong_dtype_shape_and_labels_are_named() {
    let y = Array1::<i64>::from(vec![1, 2]).into_dyn();
    let x_f32 = Array4::<f32>::zeros((2, 8, 8, 3)).into_dyn();
    let m = msg(load_imagenet_val(write_npz("f32.npz", &x_f32, &y)));
    assert!(m.contains("X.npy") && m.contains("uint8"), "{m}");

    let x_4ch = Array4::<u8>::zeros((2, 8, 8, 4)).into_dyn();
    let m = msg(load_imagenet_val(write_npz("4ch.npz", &x_4ch, &y)));
    assert!(
        m.contains("3 colour channels") && m.contains("[2, 8, 8, 4]"),
        "{m}"
    );

    let x = Array4::<u8>::zeros((2, 8, 8, 3)).into_dyn();
    let y3 = Array1::<i64>::from(vec![1, 2, 3]).into_dyn();
    let m = msg(load_imagenet_val(write_npz("count.npz", &x, &y3)));
    assert!(m.contains("3 labels for 2 images"), "{m}");

    let y_bad = Array1::<i64>::from(vec![1, 1000]).into_dyn();
    let m = msg(load_imagenet_val(write_npz("label.npz", &x, &y_bad)));
    assert!(m.contains("y[1] = 1000 outside 0..1000"), "{m}");

    let y_i32 = Array1::<i32>::from(vec![1, 2]).into_dyn();
    let m = msg(load_imagenet_val(write_npz("yi32.npz", &x, &y_i32)));
    assert!(m.contains("y.npy") && m.contains("int64"), "{m}");

    let ok = load_imagenet_val(write_npz("ok.npz", &x, &y)).unwrap();
    assert_eq!(ok.len(), 2);
    assert!(msg(ok.image(2)).contains("outside 0..2"));
    assert!(msg(ok.sample(0, 1)).contains("num"));
    assert!(msg(ok.class_name(-1)).contains("-1"));
}

#[test]
fn images_of_the_wrong_size_or_channels() {
    let m = msg(preprocess(Array3::<u8>::zeros((10, 10, 1)).view(), 224));
    assert!(m.contains("[10, 10, 1]"), "{m}");
    let m = msg(preprocess_batch(Array4::<u8>::zeros((0, 10, 10, 3)).view()));
    assert!(m.contains("[0, 10, 10, 3]"), "{m}");
    let model = model();
    // Too small for SqueezeNet's pooling: libtorch's error, not a panic.
    let tiny = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let m = msg(attribution::vanilla_gradient(&model, &tiny, &[0]));
    assert!(m.contains("[1, 3, 8, 8]"), "{m}");
    let gray = Tensor::zeros([1, 1, 224, 224], (Kind::Float, Device::Cpu));
    let m = msg(attribution::vanilla_gradient(&model, &gray, &[0]));
    assert!(m.contains("[1, 1, 224, 224]"), "{m}");
    let not_preprocessed = Tensor::zeros([1, 3, 224, 224], (Kind::Uint8, Device::Cpu));
    let m = msg(attribution::vanilla_gradient(
        &model,
        &not_preprocessed,
        &[0],
    ));
    assert!(m.contains("preprocess"), "{m}");
    let m = msg(saliency_lab::load_image_file(tmp("missing.png"), 224));
    assert!(m.contains("missing.png"), "{m}");
    let not_png = tmp("not-an-image.png");
    std::fs::write(&not_png, b"plain text").unwrap();
    let m = msg(saliency_lab::load_image_file(&not_png, 224));
    assert!(
        m.contains("not-an-image.png") && m.contains("decode"),
        "{m}"
    );
}

#[test]
fn nan_targets_and_smoothgrad_parameters() {
    let model = model();
    let x = Tensor::zeros([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let m = msg(attribution::vanilla_gradient(&model, &x, &[0, 1000]));
    assert!(m.contains("1000 (image 1)") && m.contains("0..1000"), "{m}");
    let m = msg(attribution::vanilla_gradient(&model, &x, &[0]));
    assert!(m.contains("2 target classes"), "{m}");
    let _ = x.get(1).get(0).get(5).get(5).fill_(f64::NAN);
    let m = msg(attribution::vanilla_gradient(&model, &x, &[0, 1]));
    assert!(m.contains("NaN"), "{m}");
    let clean = Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    for (cfg, name) in [
        (
            SmoothGradConfig::default().with_noise_level(-0.5),
            "noise_level = -0.5",
        ),
        (SmoothGradConfig::default().with_samples(0), "samples = 0"),
        (
            SmoothGradConfig::default().with_batch_size(0),
            "batch_size = 0",
        ),
    ] {
        let m = msg(attribution::smoothgrad(&model, &clean, &[0], &cfg));
        assert!(m.contains(name), "{m}");
    }
    let m = msg(saliency_lab::blur_image(
        Array3::<u8>::zeros((4, 4, 3)).view(),
        -1.0,
    ));
    assert!(m.contains("sigma = -1"), "{m}");
}

#[test]
fn missing_and_mismatched_weights_name_the_tensor() {
    let m = msg(squeezenet1_1(tmp("no-weights.safetensors"), Device::Cpu));
    assert!(
        m.contains("no-weights.safetensors") && m.contains("not found"),
        "{m}"
    );

    let garbage = tmp("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let m = msg(squeezenet1_1(&garbage, Device::Cpu));
    assert!(
        m.contains("garbage.safetensors") && m.contains("safetensors"),
        "{m}"
    );

    let real = Tensor::read_safetensors(saliency_lab::assets::weights_path().unwrap()).unwrap();
    let without: Vec<(String, Tensor)> = real
        .iter()
        .filter(|(n, _)| n != "features.3.squeeze.bias")
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    let path = tmp("missing-tensor.safetensors");
    Tensor::write_safetensors(&without, &path).unwrap();
    let m = msg(squeezenet1_1(&path, Device::Cpu));
    assert!(
        m.contains("missing-tensor.safetensors")
            && m.contains("missing tensor `features.3.squeeze.bias`"),
        "{m}"
    );

    let reshaped: Vec<(String, Tensor)> = real
        .iter()
        .map(|(n, t)| {
            if n == "classifier.1.weight" {
                (n.clone(), t.narrow(0, 0, 10))
            } else {
                (n.clone(), t.shallow_clone())
            }
        })
        .collect();
    let path = tmp("wrong-shape.safetensors");
    Tensor::write_safetensors(&reshaped, &path).unwrap();
    let m = msg(squeezenet1_1(&path, Device::Cpu));
    assert!(
        m.contains(
            "`classifier.1.weight` has shape [10, 512, 1, 1], the model expects [1000, 512, 1, 1]"
        ),
        "{m}"
    );
    assert!(matches!(
        squeezenet1_1(&path, Device::Cpu),
        Err(Error::Weights { .. })
    ));
}
