//! The homework's reference test gives no false failures: the crate's own
//! SmoothGrad, with 20 seeds other than the reference's, passes it every
//! time; one noisy sample, or noise not scaled to the image, does not.
//! (The kept submissions in `submissions/`, graded in `notebooks.rs`, check
//! answers written in other styles.)

mod common;

use common::{data, model};
use saliency_lab::attribution::{max_abs, smoothgrad, SmoothGradConfig};
use saliency_lab::grading::compare_smoothgrad_maps;
use saliency_lab::preprocess_batch;

#[test]
fn the_reference_test_passes_any_seed_and_fails_wrong_answers() {
    let d = data();
    let x = preprocess_batch(d.images.view()).unwrap().narrow(0, 1, 2);
    let y = &d.labels[1..3];
    let model = model();
    let map =
        |cfg: SmoothGradConfig| max_abs(&smoothgrad(&model, &x, y, &cfg).unwrap().mean).unwrap();
    // The hidden test's reference: seed 7, 50 samples, 15% noise.
    let reference = map(SmoothGradConfig::default().with_seed(7));
    let mut worst = f64::INFINITY;
    for seed in (0..21).filter(|&s| s != 7) {
        let student = map(SmoothGradConfig::default().with_seed(seed));
        compare_smoothgrad_maps(&reference, &student)
            .unwrap_or_else(|why| panic!("seed {seed}, a correct answer, fails: {why}"));
        worst = worst.min(block_corr(&reference, &student));
    }
    println!("20 seeds pass; the lowest block correlation is {worst:.3} (the test needs > 0.9)");
    let one = map(SmoothGradConfig::default().with_seed(3).with_samples(1));
    assert!(
        compare_smoothgrad_maps(&reference, &one).is_err(),
        "one noisy sample passes"
    );
    let unscaled = map(SmoothGradConfig::default().with_noise_level(0.15 / 4.9));
    assert!(
        compare_smoothgrad_maps(&reference, &unscaled).is_err(),
        "noise of 0.15 absolute passes"
    );
    assert!(compare_smoothgrad_maps(&reference, &reference.narrow(0, 0, 1)).is_err());
}

fn block_corr(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    (0..a.size()[0])
        .map(|i| {
            let pool = |m: &tch::Tensor| {
                m.get(i)
                    .view([1, 1, 224, 224])
                    .avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None::<i64>)
                    .flatten(0, -1)
            };
            let (p, q) = (pool(a), pool(b));
            let (p, q) = (&p - p.mean(tch::Kind::Float), &q - q.mean(tch::Kind::Float));
            (&p * &q).sum(tch::Kind::Float).double_value(&[])
                / (p.norm().double_value(&[]) * q.norm().double_value(&[]))
        })
        .fold(f64::INFINITY, f64::min)
}
