//! The network-visualisation homework's checks: a student's fooling image
//! and class visualisation against CS231n's algorithm (the crate's
//! [`synthesis`](crate::synthesis)), run by the grader on the same inputs.

use tch::{Device, Kind, Tensor};

use crate::model::Network;
use crate::synthesis::{valid_range, ClassVisualisation, FoolingImage, Jitter};

/// The largest L2 distance (in the preprocessed space) a fooling image may
/// be from the given one: 100 random targets on the lab's images took at
/// most 18.3 by CS231n's rule (at most 69 steps).
pub const FOOLING_MAX_L2: f64 = 30.0;
/// The largest change of any value (L-infinity, preprocessed; 2.0 is about
/// 115 grey levels): at most 0.96 on the same 100 targets.
pub const FOOLING_MAX_LINF: f64 = 2.0;
/// Slack for the range check (float rounding of the clamp's bounds).
const RANGE_SLACK: f64 = 1e-4;

fn error(text: impl Into<String>) -> String {
    text.into()
}

/// Each channel of `image` `[N, 3, H, W]` within the range of a real image
/// after preprocessing.
///
/// # Errors
/// A message naming the channel and the value outside its range.
pub fn check_in_valid_range(image: &Tensor) -> Result<(), String> {
    if image.dim() != 4 || image.size()[1] != 3 {
        return Err(error(format!(
            "expected images [N, 3, H, W], got {:?}",
            image.size()
        )));
    }
    for (c, &(lo, hi)) in valid_range().iter().enumerate() {
        let ch = image.select(1, c as i64).to_kind(Kind::Double);
        let (min, max) = (ch.min().double_value(&[]), ch.max().double_value(&[]));
        if !(min.is_finite() && max.is_finite()) {
            return Err(error(format!("channel {c} holds NaN or infinite values")));
        }
        if min < f64::from(lo) - RANGE_SLACK || max > f64::from(hi) + RANGE_SLACK {
            return Err(error(format!(
                "channel {c} spans [{min:.3}, {max:.3}], outside the range of a real image, [{lo:.3}, {hi:.3}]: clamp each channel after each step"
            )));
        }
    }
    Ok(())
}

/// A student's fooling image of `given` (`[1, 3, H, W]`) for `target`,
/// taken in `steps` steps, against CS231n's rule run here: the grader's
/// model takes it for the target (where the rule fools it within 100
/// steps), it is in the valid range, each step has length at most 1 (its L2
/// distance is at most its steps), it is within [`FOOLING_MAX_L2`] and
/// [`FOOLING_MAX_LINF`] of the given image, and its steps are near the
/// rule's (within 3, or a quarter).
///
/// # Errors
/// A message for the student saying what differs.
pub fn check_fooling_image(
    net: &dyn Network,
    given: &Tensor,
    fooled: &Tensor,
    steps: usize,
    target: i64,
) -> Result<(), String> {
    if fooled.size() != given.size() {
        return Err(error(format!(
            "the fooling image has shape {:?}, the given image {:?}",
            fooled.size(),
            given.size()
        )));
    }
    check_in_valid_range(fooled)?;
    let reference = FoolingImage::default()
        .run(&net, given, &[target])
        .map_err(|e| format!("the reference could not run: {e}"))?;
    let (want_steps, want_fooled) = (reference.steps[0], reference.fooled[0]);
    let fooled = fooled.to_kind(Kind::Float).to_device(given.device());
    let d = &fooled - given;
    let l2 = d.norm().double_value(&[]);
    let linf = d.abs().max().double_value(&[]);
    if steps > 100 {
        return Err(error(format!("{steps} steps: at most 100")));
    }
    if l2 > FOOLING_MAX_L2 || linf > FOOLING_MAX_LINF {
        return Err(error(format!(
            "not a small change of the given image: L2 distance {l2:.2} (at most {FOOLING_MAX_L2}), largest change {linf:.3} (at most {FOOLING_MAX_LINF})"
        )));
    }
    if l2 > steps as f64 + 1e-3 {
        return Err(error(format!(
            "the image moved {l2:.2} (L2) in {steps} step(s): each step should have length 1 (the gradient divided by its norm, times the learning rate 1)"
        )));
    }
    let _guard = tch::no_grad_guard();
    let predicted = net
        .logits(&fooled)
        .argmax(1, false)
        .to_device(Device::Cpu)
        .int64_value(&[0]);
    if want_fooled && predicted != target {
        return Err(error(format!(
            "the grader's model takes the fooling image for class {predicted}, not {target} (CS231n's rule gets there in {want_steps} steps): go up the target's score, stop when the model predicts it"
        )));
    }
    if !want_fooled && steps != 100 {
        return Err(error(format!(
            "CS231n's rule does not fool the model in 100 steps here, and yours stopped after {steps}"
        )));
    }
    let slack = 3.max(want_steps / 4);
    if steps.abs_diff(want_steps) > slack {
        return Err(error(format!(
            "took {steps} step(s) where CS231n's rule takes {want_steps}"
        )));
    }
    Ok(())
}

/// A student's class visualisation (`image` `[1, 3, H, W]`, `scores` the
/// target's score at each step) from `noise` with `offsets`, against the
/// crate's run of `config` on the same inputs.
///
/// With `exact` (a run of one step: float rounding has not grown yet) the
/// image is within 1e-3 (relative L2) of the reference and every score
/// within 1e-3 (relative). Otherwise (a full run) the first two scores are
/// (the noise jittered, and one step later), the image is in the valid
/// range, and the grader's model scores it at least half as high as the
/// reference. Ascent amplifies rounding: a correct answer written with
/// other tensor operations was 2.3e-3 from the crate's score at step 3 and
/// another image after 100 steps (relative L2 about 1), with a final score
/// within 10%.
///
/// # Errors
/// A message for the student saying what differs.
#[allow(clippy::too_many_arguments)]
pub fn check_visualisation(
    net: &dyn Network,
    config: &ClassVisualisation,
    noise: &Tensor,
    offsets: &[[i64; 2]],
    target: i64,
    image: &Tensor,
    scores: &[f64],
    exact: bool,
) -> Result<(), String> {
    if image.size() != noise.size() {
        return Err(error(format!(
            "the image has shape {:?}, the noise {:?}",
            image.size(),
            noise.size()
        )));
    }
    if scores.len() != config.steps {
        return Err(error(format!(
            "{} scores for {} steps: one per step",
            scores.len(),
            config.steps
        )));
    }
    check_in_valid_range(image)?;
    let jitter = Jitter {
        offsets: vec![offsets.to_vec()],
    };
    let reference = config
        .run_from(&net, noise, &jitter, &[target], &mut |_| {})
        .map_err(|e| format!("the reference could not run: {e}"))?;
    let want: Vec<f32> =
        Vec::try_from(reference.scores.get(0)).map_err(|e: tch::TchError| e.to_string())?;
    let compared = if exact { want.len() } else { want.len().min(2) };
    for (t, (&got, &w)) in scores.iter().zip(&want).take(compared).enumerate() {
        let w = f64::from(w);
        if (got - w).abs() > 1e-3 * w.abs().max(1.0) {
            return Err(error(format!(
                "step {t}: the target's score is {got:.4}, CS231n's algorithm gives {w:.4} (jitter, then a step of learning_rate * g / ||g|| on score - l2_reg * ||img||^2, then undo the jitter, clamp, blur every blur_every steps from step 0)"
            )));
        }
    }
    let image = image.to_kind(Kind::Float).to_device(noise.device());
    if exact {
        let rel = (&image - &reference.images).norm().double_value(&[])
            / reference.images.norm().double_value(&[]);
        if rel > 1e-3 {
            return Err(error(format!(
                "after {} steps the image is {rel:.2e} (relative L2) from CS231n's algorithm's: undo the jitter, then clamp, then blur (every blur_every steps, from step 0)",
                config.steps
            )));
        }
        return Ok(());
    }
    let _guard = tch::no_grad_guard();
    let got = net.logits(&image).double_value(&[0, target]);
    let want_final = reference.final_scores.double_value(&[0]);
    if got < 0.5 * want_final {
        return Err(error(format!(
            "the grader's model scores your image {got:.1} for class {target}; CS231n's algorithm reaches {want_final:.1} from the same noise (at least half of that is expected)"
        )));
    }
    Ok(())
}
