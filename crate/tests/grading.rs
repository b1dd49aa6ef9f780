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

/// The figure test's third row: the figure a correct answer draws (SmoothGrad
/// of the first five images, n = 20, as the task asks) against the student's
/// own SmoothGrad of them drawn again with other noise passes for every seed
/// tried; a row of vanilla gradients, or of one noisy sample, does not.
#[test]
fn the_figure_test_knows_smoothgrad_from_the_vanilla_gradient() {
    use saliency_lab::attribution::vanilla_gradient;
    use saliency_lab::grading::{figure_row_correlations, figure_row_matches};
    use saliency_lab::plot::{Colormap, Grid, Panel};
    let d = data();
    let x = preprocess_batch(d.images.view()).unwrap().narrow(0, 0, 5);
    let y = &d.labels[..5];
    let model = model();
    let sg = |seed: u64, n: usize| {
        let cfg = SmoothGradConfig::default().with_seed(seed).with_samples(n);
        max_abs(&smoothgrad(&model, &x, y, &cfg).unwrap().mean).unwrap()
    };
    let figure = |third: &tch::Tensor| {
        let mut grid = Grid::new(3, 5);
        let vanilla = max_abs(&vanilla_gradient(&model, &x, y).unwrap()).unwrap();
        for i in 0..5 {
            grid = grid
                .with_panel(0, i, Panel::image(d.image(i).unwrap(), "image"))
                .with_panel(
                    1,
                    i,
                    Panel::map(&vanilla.get(i as i64), Colormap::Hot, "").unwrap(),
                )
                .with_panel(
                    2,
                    i,
                    Panel::map(&third.get(i as i64), Colormap::Hot, "").unwrap(),
                );
        }
        grid.render().unwrap()
    };
    let drawn = figure(&sg(100, 20));
    let mut worst = f64::INFINITY;
    for seed in 0..5 {
        let own = sg(seed, 20);
        figure_row_matches(&drawn, 2, &own, 0.85)
            .unwrap_or_else(|why| panic!("seed {seed}, a correct figure, fails: {why}"));
        worst = figure_row_correlations(&drawn, 2, &own)
            .unwrap()
            .into_iter()
            .fold(worst, f64::min);
    }
    let vanilla = max_abs(&vanilla_gradient(&model, &x, y).unwrap()).unwrap();
    let best_vanilla = figure_row_correlations(&figure(&vanilla), 2, &sg(0, 20))
        .unwrap()
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max);
    println!(
        "two draws of n = 20: lowest block correlation {worst:.3}; a vanilla row against SmoothGrad: \
         highest {best_vanilla:.3} (the test needs > 0.85)"
    );
    assert!(figure_row_matches(&figure(&vanilla), 2, &sg(0, 20), 0.85).is_err());
    assert!(figure_row_matches(&figure(&sg(1, 1)), 2, &sg(2, 1), 0.85).is_err());
}
