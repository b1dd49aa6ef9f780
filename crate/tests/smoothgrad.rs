//! SmoothGrad, SG-SQ and VarGrad on the real model and images: the
//! properties that pin the estimators down (Smilkov et al. 2017).

mod common;

use common::*;
use saliency_lab::attribution::{self, smoothgrad, NoiseGenerator, NoiseSamples, SmoothGradConfig};
use saliency_lab::preprocess_batch;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

fn two_images() -> (Tensor, Vec<i64>) {
    let d = data().select(&[1, 2]).unwrap();
    (preprocess_batch(d.images.view()).unwrap(), d.labels)
}

#[test]
fn noise_zero_equals_the_vanilla_gradient() {
    let model = model();
    let (x, y) = two_images();
    let cfg = SmoothGradConfig::default()
        .with_noise_level(0.0)
        .with_samples(4)
        .with_batch_size(3);
    let sg = smoothgrad(&model, &x, &y, &cfg).unwrap();
    let vanilla = attribution::vanilla_gradient(&model, &x, &y).unwrap();
    let err = max_rel_error(&array(&sg.mean), &array(&vanilla));
    assert!(err <= REL_TOL, "relative error {err:e}");
    // All samples equal: no variance.
    assert!(
        sg.variance.abs().max().double_value(&[])
            <= 1e-12 * sg.mean_square.max().double_value(&[]).max(1e-30)
    );
}

#[test]
fn same_seed_same_map_other_seed_other_map_any_batching() {
    let model = model();
    let (x, y) = two_images();
    let cfg = SmoothGradConfig::default()
        .with_samples(6)
        .with_seed(11)
        .with_batch_size(4);
    let a = smoothgrad(&model, &x, &y, &cfg).unwrap();
    let b = smoothgrad(&model, &x, &y, &cfg).unwrap();
    assert!(
        a.mean.equal(&b.mean),
        "same seed, same batching: bit-identical"
    );
    // Other batch sizes draw the same noise: equal up to float rounding.
    for batch in [1, 6] {
        let c = smoothgrad(&model, &x, &y, &cfg.clone().with_batch_size(batch)).unwrap();
        let err = max_rel_error(&array(&c.mean), &array(&a.mean));
        assert!(err <= REL_TOL, "batch {batch}: relative error {err:e}");
    }
    // One image alone gets the same noise as in the batch (stream per index).
    let alone = smoothgrad(&model, &x.narrow(0, 0, 1), &y[..1], &cfg).unwrap();
    let err = max_rel_error(&array(&alone.mean), &array(&a.mean.narrow(0, 0, 1)));
    assert!(err <= REL_TOL, "{err:e}");
    let other = smoothgrad(&model, &x, &y, &cfg.clone().with_seed(12)).unwrap();
    let diff = max_rel_error(&array(&other.mean), &array(&a.mean));
    assert!(
        diff > 0.05,
        "another seed should give another map ({diff:e})"
    );
    assert_eq!(a.sigmas.len(), 2);
}

#[test]
fn sg_sq_and_vargrad_identities_hold() {
    let model = model();
    let (x, y) = two_images();
    let cfg = SmoothGradConfig::default()
        .with_samples(10)
        .with_batch_size(4);
    let sg = smoothgrad(&model, &x, &y, &cfg).unwrap();
    // VarGrad = SG-SQ - SmoothGrad^2 (accumulated independently).
    let identity = &sg.mean_square - sg.mean.square();
    let err = max_rel_error(&array(&sg.variance), &array(&identity));
    assert!(err <= 1e-3, "VarGrad identity: relative error {err:e}");
    // SG-SQ >= SmoothGrad^2 and VarGrad >= 0 everywhere.
    assert!(sg.variance.min().double_value(&[]) >= 0.0);
    // SmoothGrad is the mean of the per-sample gradients, recomputed by hand.
    let mut noise = NoiseSamples::new(&x.narrow(0, 0, 1), 0, &cfg).unwrap();
    let batch = noise.next_batch(10);
    let g = attribution::vanilla_gradient(&model, &batch, &[y[0]; 10]).unwrap();
    let by_hand = g.mean_dim(0, true, Kind::Float);
    let err = max_rel_error(&array(&by_hand), &array(&sg.mean.narrow(0, 0, 1)));
    assert!(err <= REL_TOL, "mean by hand: {err:e}");
    let sq = g.square().mean_dim(0, true, Kind::Float);
    let err = max_rel_error(&array(&sq), &array(&sg.mean_square.narrow(0, 0, 1)));
    assert!(err <= REL_TOL, "mean square by hand: {err:e}");
}

#[test]
fn smoothgrad_is_smoother_than_the_vanilla_gradient() {
    // The point of the method: neighbouring pixels agree more. Measured as the
    // mean absolute difference of horizontal neighbours relative to the mean
    // magnitude of the max-abs map.
    let model = model();
    let (x, y) = two_images();
    let roughness = |m: &Tensor| {
        let d = (m.narrow(2, 1, 223) - m.narrow(2, 0, 223))
            .abs()
            .mean(Kind::Float);
        d.double_value(&[]) / m.abs().mean(Kind::Float).double_value(&[])
    };
    let vanilla =
        attribution::max_abs(&attribution::vanilla_gradient(&model, &x, &y).unwrap()).unwrap();
    let cfg = SmoothGradConfig::default().with_samples(20);
    let sg = attribution::max_abs(&smoothgrad(&model, &x, &y, &cfg).unwrap().mean).unwrap();
    assert!(
        roughness(&sg) < 0.8 * roughness(&vanilla),
        "{} vs {}",
        roughness(&sg),
        roughness(&vanilla)
    );
}

#[test]
fn any_module_works_not_only_squeezenet() {
    // A tiny linear model: score_c = sum(w_c * x), so the gradient is w_target.
    let vs = nn::VarStore::new(Device::Cpu);
    let lin = nn::linear(vs.root() / "fc", 3 * 4 * 4, 5, Default::default());
    let net = nn::func_t(move |xs, _train| lin.forward(&xs.flatten(1, -1)));
    let model = saliency_lab::Model::new(vs, Box::new(net), "linear");
    let x = Tensor::randn([2, 3, 4, 4], (Kind::Float, Device::Cpu));
    let g = attribution::vanilla_gradient(&model, &x, &[1, 4]).unwrap();
    let w = model.var_store().variables()["fc.weight"].shallow_clone();
    assert!(g
        .narrow(0, 0, 1)
        .flatten(0, -1)
        .allclose(&w.get(1), 1e-6, 1e-6, false));
    assert!(g
        .narrow(0, 1, 1)
        .flatten(0, -1)
        .allclose(&w.get(4), 1e-6, 1e-6, false));
    // Linear model: every noisy sample has the same gradient.
    let sg = smoothgrad(
        &model,
        &x,
        &[1, 4],
        &SmoothGradConfig::default().with_samples(3),
    )
    .unwrap();
    assert!(sg.mean.allclose(&g, 1e-5, 1e-6, false));
    // Frozen: the weights get no gradient.
    assert!(!w.requires_grad());
}

#[test]
fn both_noise_generators_estimate_the_same_smoothgrad() {
    // Two Monte Carlo estimates with different noise: the max-abs maps,
    // averaged over 8 x 8 blocks, must correlate as scripts/bench.py asks
    // of the crate against Captum (median >= 0.9).
    let model = model();
    let (x, y) = two_images();
    let cfg = SmoothGradConfig::default().with_samples(50);
    let chacha = smoothgrad(&model, &x, &y, &cfg).unwrap();
    let counter = smoothgrad(
        &model,
        &x,
        &y,
        &cfg.clone().with_generator(NoiseGenerator::Counter),
    )
    .unwrap();
    let blocks = |g: &Tensor| {
        attribution::max_abs(g)
            .unwrap()
            .view([2, 1, 224, 224])
            .avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None::<i64>)
            .view([2, -1])
            .to_kind(Kind::Double)
    };
    let (a, b) = (blocks(&chacha.mean), blocks(&counter.mean));
    for i in 0..2 {
        let (a, b) = (a.get(i), b.get(i));
        let (a, b) = (&a - a.mean(Kind::Double), &b - b.mean(Kind::Double));
        let corr = (&a * &b).sum(Kind::Double).double_value(&[])
            / (a.norm().double_value(&[]) * b.norm().double_value(&[]));
        assert!(corr >= 0.9, "image {i}: block correlation {corr}");
    }
}

/// SqueezeNet 1.1 as tch builds it (`tch::vision::squeezenet::v1_1`), with
/// its convolution weights in NHWC layout, as the crate's fast path keeps
/// them for batches of copies: the reference for that path, which reorders
/// ReLU and pooling and computes one class's score.
fn tch_squeezenet() -> saliency_lab::Model {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = tch::vision::squeezenet::v1_1(&vs.root(), 1000);
    saliency_lab::model::load_weights(&vs, &saliency_lab::assets::weights_path().unwrap()).unwrap();
    for (_, var) in vs.variables() {
        if var.dim() == 4 {
            let nhwc = var.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
            tch::no_grad(|| var.shallow_clone().set_data(&nhwc));
        }
    }
    saliency_lab::Model::new(vs, Box::new(net), "tch SqueezeNet 1.1")
}

#[test]
fn the_crates_squeezenet_twin_gives_tchs_gradients() {
    let (x, y) = two_images();
    let cfg = SmoothGradConfig::default()
        .with_samples(6)
        .with_batch_size(3);
    let fast = smoothgrad(&model(), &x, &y, &cfg).unwrap();
    let reference = smoothgrad(&tch_squeezenet(), &x, &y, &cfg).unwrap();
    let err = max_rel_error(&array(&fast.mean), &array(&reference.mean));
    eprintln!("crate's SqueezeNet twin vs tch's: relative error {err:e}");
    assert!(err <= REL_TOL, "relative error {err:e}");
    let err = max_rel_error(&array(&fast.variance), &array(&reference.variance));
    assert!(err <= REL_TOL, "VarGrad: relative error {err:e}");
    // Whole-network scores of an NHWC batch agree too.
    let nhwc = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
    let (a, b) = (
        model().scores(&nhwc).unwrap(),
        tch_squeezenet().scores(&nhwc).unwrap(),
    );
    assert!(max_rel_error(&array(&a), &array(&b)) <= REL_TOL);
    // A class outside the model is an error, not a panic.
    let msg = smoothgrad(&model(), &x.narrow(0, 0, 1), &[1000], &cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("1000") && msg.contains("0..1000"), "{msg}");
}
