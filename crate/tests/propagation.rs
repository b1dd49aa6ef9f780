//! The propagation methods against their reference implementations on the
//! lab's 25 images with the real weights (`scripts/reference_propagation.py`):
//! DeepLift, DeepLiftShap and GradientShap against Captum, every LRP rule and
//! composite against Zennit, within the suite's tolerance policy (relative
//! L2 error per image at most `REL_TOL`, 1e-4); GradientShap on Captum's
//! draws exactly, and on its own as a Monte Carlo estimate of the same
//! expectation.

mod common;

use common::{array, data, max_rel_error, model, propagation_reference_dir, read_npy, REL_TOL};
use ndarray::ArrayD;
use saliency_lab::attribution::{
    Baseline, DeepLift, DeepLiftShap, Draws, GradientShap, Lrp, LrpRule, Method, PoolingRule,
};
use saliency_lab::model::Numerics;
use saliency_lab::{preprocess_batch, Model};
use tch::{Kind, Tensor};

fn inputs(n: i64) -> (Tensor, Vec<i64>) {
    let d = data();
    let x = preprocess_batch(d.images.view()).unwrap();
    (x.narrow(0, 0, n), d.labels[..n as usize].to_vec())
}

fn reference<T: ndarray_npy::ReadableElement>(name: &str) -> ArrayD<T> {
    read_npy(&propagation_reference_dir().join(format!("{name}.npy")))
}

fn to_tensor<T: tch::kind::Element + Clone>(a: &ArrayD<T>) -> Tensor {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let flat: Vec<T> = a.iter().cloned().collect();
    Tensor::from_slice(&flat).view(shape.as_slice())
}

fn tensor(name: &str) -> Tensor {
    to_tensor(&reference::<f32>(name))
}

/// `method` on the first `n` images, on the fast paths and PyTorch's way,
/// against the reference `name`.
fn agrees(method: &dyn Method, name: &str, n: i64) {
    let (x, y) = inputs(n);
    let want = reference::<f32>(name);
    for model in [model(), model().with_numerics(Numerics::PyTorch)] {
        let got = method.attribute(&model, &x, &y).unwrap();
        let err = max_rel_error(&array(&got.values), &want);
        println!(
            "{name} ({:?}): largest relative error over {n} images {err:.2e}",
            model.numerics()
        );
        assert!(
            err <= REL_TOL,
            "{name} ({:?}): relative error {err:.2e} > {REL_TOL:.0e}",
            model.numerics()
        );
    }
}

#[test]
#[ignore = "needs the venv's Python with Zennit (scripts/test runs it)"]
fn every_lrp_rule_and_composite_equals_zennits() {
    for rule in LrpRule::ALL {
        agrees(&Lrp::new(rule), &format!("lrp_{}", rule.name()), 25);
    }
}

#[test]
#[ignore = "needs the venv's Python with Captum (scripts/test runs it)"]
fn deeplift_equals_captums_with_each_baseline() {
    agrees(&DeepLift::default(), "deeplift", 25);
    agrees(
        &DeepLift::default().with_baseline(Baseline::Black),
        "deeplift_black",
        5,
    );
    agrees(
        &DeepLift::default().with_baseline(Baseline::Blur(10.0)),
        "deeplift_blur",
        5,
    );
    // Completeness: the map's sum against f(x) - f(0), as Captum's
    // convergence delta reports it: far from zero on SqueezeNet (Captum's
    // max-pooling rule, PoolingRule::Captum); zero to rounding with every
    // window's part kept (PoolingRule::Complete).
    let (x, y) = inputs(25);
    let m = model();
    let want = reference::<f64>("deeplift_delta");
    for (pooling, zero) in [(PoolingRule::Captum, false), (PoolingRule::Complete, true)] {
        let dl = DeepLift::default().with_pooling(pooling);
        let maps = dl.attribute(&m, &x, &y).unwrap().values;
        let delta = dl.completeness_delta(&m, &x, &y, &maps).unwrap();
        let delta = Vec::<f64>::try_from(delta).unwrap();
        for (i, (d, w)) in delta.iter().zip(want.iter()).enumerate() {
            if zero {
                assert!(d.abs() < 1e-3, "{pooling:?}, image {i}: delta {d:.2e}");
            } else {
                assert!(
                    (d - w).abs() < 1e-3 * w.abs().max(1.0),
                    "{pooling:?}, image {i}: delta {d:.4}, Captum's {w:.4}"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs the venv's Python with Captum (scripts/test runs it)"]
fn deeplift_shap_equals_captums() {
    let baselines = tensor("dls_baselines");
    agrees(
        &DeepLiftShap::default().with_baselines(baselines.shallow_clone()),
        "deeplift_shap",
        5,
    );
    // The default, each image's own standard baselines: DeepLift's mean over them.
    let (x, y) = inputs(2);
    let m = model();
    let shap = DeepLiftShap::default()
        .attribute(&m, &x, &y)
        .unwrap()
        .values;
    let each = [Baseline::Zeros, Baseline::Black, Baseline::Blur(10.0)].map(|b| {
        DeepLift::default()
            .with_baseline(b)
            .attribute(&m, &x, &y)
            .unwrap()
            .values
    });
    let mean = Tensor::stack(&each, 0).mean_dim(0, false, Kind::Float);
    let err = (&shap - &mean).norm().double_value(&[]) / mean.norm().double_value(&[]);
    assert!(
        err < 1e-6,
        "the standard baselines' mean: relative error {err:.1e}"
    );
}

/// Captum's GradientShap on the same draws: equal; on its own draws (200
/// samples each): the same expectation, compared as two Monte Carlo
/// estimates are (8 x 8-block correlation of the max-abs maps, median at
/// least 0.9, each at least 0.75).
#[test]
#[ignore = "needs the venv's Python with Captum (scripts/test runs it)"]
fn gradient_shap_equals_captums_on_its_draws_and_estimates_the_same() {
    let baselines = tensor("dls_baselines");
    let draws = Draws {
        indices: to_tensor(&reference::<i64>("gshap_indices")),
        alphas: tensor("gshap_alphas"),
        noise: Some(tensor("gshap_noise")),
    };
    let gs = GradientShap::new()
        .with_baselines(baselines.shallow_clone())
        .with_draws(draws);
    let (x, y) = inputs(5);
    let pytorch = model().with_numerics(Numerics::PyTorch);
    let got = gs.attribute(&pytorch, &x, &y).unwrap().values;
    let err = max_rel_error(&array(&got), &reference("gshap_exact"));
    println!("gradient-shap on Captum's draws: largest relative error {err:.2e}");
    assert!(err <= REL_TOL, "relative error {err:.2e}");

    let ours = GradientShap::new()
        .with_baselines(baselines)
        .with_samples(200)
        .with_stdev(0.2)
        .with_seed(5)
        .attribute(&model(), &x, &y)
        .unwrap()
        .values;
    let theirs = tensor("gshap_mc");
    let blocks = |t: &Tensor| {
        t.abs()
            .amax([1].as_slice(), false)
            .unsqueeze(1)
            .avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None::<i64>)
            .flatten(1, -1)
            .to_kind(Kind::Double)
    };
    let (a, b) = (blocks(&ours), blocks(&theirs));
    let mut corr: Vec<f64> = (0..5)
        .map(|i| {
            let (u, v) = (
                a.get(i) - a.get(i).mean(Kind::Double),
                b.get(i) - b.get(i).mean(Kind::Double),
            );
            (&u * &v).sum(Kind::Double).double_value(&[])
                / (u.norm().double_value(&[]) * v.norm().double_value(&[]))
        })
        .collect();
    println!("gradient-shap against Captum's estimate: block correlations {corr:.3?}");
    corr.sort_by(f64::total_cmp);
    assert!(
        corr[2] >= 0.9 && corr[0] >= 0.75,
        "block correlations {corr:?}"
    );
}

/// Same maps whatever the batch: each image alone, in a batch, in another
/// order (the draws follow the image's index, as the noise tunnel's do).
#[test]
fn propagation_maps_do_not_depend_on_the_batch() {
    let (x, y) = inputs(6);
    let m: Model = model();
    for method in [
        Box::new(DeepLift::default()) as Box<dyn Method>,
        Box::new(Lrp::new(LrpRule::EpsilonGammaBox)),
        Box::new(Lrp::new(LrpRule::Epsilon)),
    ] {
        let all = method.attribute(&m, &x, &y).unwrap().values;
        let two = method
            .attribute(&m, &x.narrow(0, 2, 2), &y[2..4])
            .unwrap()
            .values;
        let err =
            (&all.narrow(0, 2, 2) - &two).norm().double_value(&[]) / two.norm().double_value(&[]);
        assert!(err < 1e-5, "{}: relative error {err:.1e}", method.name());
    }
}

/// Where LRP's relevance goes: z+ keeps most of the target's (the biases
/// take about a fifth on SqueezeNet), epsilon almost none of it (each
/// layer's biases take their share, and the signs cancel).
#[test]
fn lrp_relevance_is_kept_by_zplus_and_lost_by_epsilon() {
    let (x, y) = inputs(3);
    let m = model();
    let delta = |rule: LrpRule| {
        let maps = Lrp::new(rule).attribute(&m, &x, &y).unwrap().values;
        let d = Vec::<f64>::try_from(Lrp::relevance_delta(&maps)).unwrap();
        println!("{}: sum(map) - 1 = {d:.3?}", rule.name());
        d
    };
    assert!(delta(LrpRule::ZPlus)
        .iter()
        .all(|d| (-0.5..0.0).contains(d)));
    assert!(delta(LrpRule::Epsilon)
        .iter()
        .all(|d| d.is_finite() && *d < -0.5));
}

/// On a network of the crate's layers (traced, not by hand), with fully
/// connected layers (which Zennit's composites give the epsilon rule) and a
/// max-pooling of a ReLU (Captum's hooks): every LRP rule equal to
/// Zennit's, DeepLift and Deconvolution to Captum's, the same network in
/// PyTorch with the same weights (`reference_propagation.py --net`).
#[test]
#[ignore = "needs the venv's Python with Captum and Zennit (scripts/test runs it)"]
fn a_network_of_the_crates_layers_equals_the_references() {
    use saliency_lab::attribution::Deconvolution;
    use saliency_lab::model::layers::{
        Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d, Relu, Sequential,
    };
    tch::manual_seed(11);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let root = vs.root();
    let padded = tch::nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    let net = Sequential::new()
        .push(Conv2d::new(&root / "0", 3, 8, 3, padded))
        .push(Relu)
        .push(MaxPool2d {
            kernel: 3,
            stride: 2,
            ceil_mode: true,
        })
        .push(Conv2d::new(&root / "3", 8, 16, 3, Default::default()))
        .push(Relu)
        .push(GlobalAvgPool)
        .push(Flatten)
        .push(Linear::new(&root / "7", 16, 12))
        .push(Relu)
        .push(Linear::new(&root / "9", 12, 5));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("propagation-net");
    std::fs::create_dir_all(&dir).unwrap();
    vs.save(dir.join("net.safetensors")).unwrap();
    let model = Model::from_layers(vs, Box::new(net), "small");
    let x = Tensor::randn([4, 3, 20, 20], (Kind::Float, tch::Device::Cpu));
    let y = [0i64, 3, 4, 1];
    x.write_npy(dir.join("input.npy")).unwrap();
    Tensor::from_slice(&y)
        .write_npy(dir.join("targets.npy"))
        .unwrap();
    let mut names = vec!["deeplift".to_string(), "deconv".to_string()];
    names.extend(LrpRule::ALL.iter().map(|r| format!("lrp_{}", r.name())));
    let status = std::process::Command::new(common::python())
        .arg(common::repo_root().join("scripts/reference_propagation.py"))
        .arg("--net")
        .arg("--weights")
        .arg(dir.join("net.safetensors"))
        .arg("--inputs")
        .arg(dir.join("input.npy"))
        .arg("--targets")
        .arg(dir.join("targets.npy"))
        .arg("--out")
        .arg(dir.join("ref"))
        .arg("--methods")
        .arg(names.join(","))
        .status()
        .unwrap();
    assert!(status.success(), "reference_propagation.py --net");
    let mut cases: Vec<(Box<dyn Method>, String)> = vec![
        (Box::new(DeepLift::default()), "deeplift".into()),
        (Box::new(Deconvolution), "deconv".into()),
    ];
    cases.extend(LrpRule::ALL.iter().map(|&r| {
        (
            Box::new(Lrp::new(r)) as Box<dyn Method>,
            format!("lrp_{}", r.name()),
        )
    }));
    for (method, name) in cases {
        let got = method.attribute(&model, &x, &y).unwrap().values;
        let want = read_npy::<f32>(&dir.join("ref").join(format!("{name}.npy")));
        let err = max_rel_error(&array(&got), &want);
        println!("{name} on the crate's layers: relative error {err:.2e}");
        assert!(err <= REL_TOL, "{name}: relative error {err:.2e}");
    }
}
