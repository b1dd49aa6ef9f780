//! Grading the homework: tests split between the student's kernel and the
//! grader's own, so that nothing the student's code can reach decides a mark.
//!
//! A test cell of a homework's solution notebook has two parts. First, code
//! that runs the student's functions on the test's inputs and ends with
//! [`hand_in!`](crate::hand_in) naming the values to check; then the checks,
//! which may use the crate's own methods (the reference SmoothGrad, RISE's
//! deletion curve) and the set-up cell's variables:
//!
//! ```no_run
//! # use saliency_lab::prelude::*;
//! # fn smooth_grad(_: &Model, x: &Tensor, _: &[i64], _: usize, _: f64) -> Result<Tensor> { Ok(x.shallow_clone()) }
//! # fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
//! # let (model, x, labels): (Model, Tensor, Vec<i64>) = todo!();
//! let g = smooth_grad(&model, &x.narrow(0, 0, 2), &labels[..2], 3, 0.15)?;
//! hand_in!(g: Tensor);
//! assert_eq!(g.size(), [2, 3, 224, 224]);
//! # Ok(()) }
//! ```
//!
//! A hidden test's inputs may be drawn at random ([`draw`]), from a seed the
//! grader picks per submission and test; lines between `// INPUTS` and
//! `// END INPUTS` at the top of a test cell draw them, and the grader runs
//! those lines in both kernels, so that its checks know the inputs too. Run
//! as it stands (the lab, a student trying the visible tests), the cell is
//! one piece, the seed is [`DEFAULT_SEED`], and `hand_in!` only checks the
//! values' types.
//!
//! Graded by `scripts/grade.py`, the first part runs in the student's
//! sandboxed kernel, inside [`probe`], where [`hand_in`] prints each value as
//! one line ([`wire`]) that the grader's collector, outside the sandbox and
//! out of the student's reach, takes from the kernel's output while that
//! test's cell runs: a value printed in another cell, a second value for one
//! name, or one after the test's outcome, fails the test as tampering. The
//! grader's own kernel reads the values back ([`handed_in`]) and runs the
//! checks inside [`check`], which records the verdict in a file of the
//! grader's. Code in the student's notebook can print any value it likes
//! while a test runs, but no verdict, and no value it could know before the
//! test's inputs were drawn.
//!
//! [`compare_smoothgrad_maps`] and [`figure_row_matches`] are the SmoothGrad
//! homework's reference checks.

mod checks;
#[cfg(feature = "synthesis")]
mod synthesis;
pub mod wire;

pub use checks::{compare_smoothgrad_maps, figure_row_correlations, figure_row_matches};
#[cfg(feature = "synthesis")]
pub use synthesis::{
    check_fooling_image, check_in_valid_range, check_visualisation, FOOLING_MAX_L2,
    FOOLING_MAX_LINF,
};

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use crate::error::{panic_message, Error, Result};
pub use wire::HandIn;

/// What a test body returns: `Ok(())`, or the error its `?` met.
pub type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// The environment variable that makes [`hand_in`] and [`probe`] print
/// their lines (the grader sets it in the student's sandbox); unset, they
/// print nothing.
pub const HAND_IN_ENV: &str = "SALIENCY_LAB_HAND_IN";

/// The seed of a test's inputs in a notebook run as it stands.
pub const DEFAULT_SEED: u64 = 0;

static SEED: AtomicU64 = AtomicU64::new(DEFAULT_SEED);

/// Names the values of a test cell that the grader checks, with their types:
/// `hand_in!(g: Tensor)`, `hand_in!(v: f64, r: f64)`. In a notebook run as it
/// stands it only checks the types (the test's checks follow in the same
/// kernel); `scripts/grade.py` replaces it with calls to
/// [`grading::hand_in`](hand_in) in the student's kernel, and with
/// [`grading::handed_in`](handed_in) in its own. The types are those of
/// [`HandIn`].
#[macro_export]
macro_rules! hand_in {
    ($($name:ident : $ty:ty),+ $(,)?) => {
        $( let _: &$ty = &$name; )+
    };
}

/// The seed of the running test's inputs: the grader's for this submission
/// and test inside [`probe`] and [`check`], else [`DEFAULT_SEED`].
#[must_use]
pub fn seed() -> u64 {
    SEED.load(Ordering::SeqCst)
}

/// A test's random inputs, drawn from [`seed`]: the same draws in the same
/// order give the same inputs in the student's kernel and in the grader's.
#[derive(Debug, Clone)]
pub struct Draw(ChaCha8Rng);

/// The draws of the running test's inputs (from [`seed`], afresh at each call).
#[must_use]
pub fn draw() -> Draw {
    Draw(ChaCha8Rng::seed_from_u64(seed()))
}

impl Draw {
    /// A number in `lo..hi`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.random::<f64>()
    }

    /// `k` distinct values of `from` (all of them if it has fewer), in the
    /// order drawn.
    pub fn choose(&mut self, k: usize, from: &[i64]) -> Vec<i64> {
        let mut pool = from.to_vec();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.0.random_range(0..pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }

    /// The numbers `0..n` in a random order.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let all: Vec<i64> = (0..n as i64).collect();
        self.choose(n, &all)
            .into_iter()
            .map(|v| v as usize)
            .collect()
    }
}

/// The standard normal distribution's CDF, Φ(x) (Abramowitz and Stegun
/// 7.1.26 for erf: absolute error below 1.5e-7), for checks whose answer is
/// a probability under Gaussian noise.
#[must_use]
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

fn with_seed<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    let before = SEED.swap(seed, Ordering::SeqCst);
    let out = f();
    SEED.store(before, Ordering::SeqCst);
    out
}

fn graded() -> bool {
    std::env::var_os(HAND_IN_ENV).is_some()
}

/// Prints a line whole, at once, and flushes it.
fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("\n{line}\n").as_bytes())?;
    out.flush()
}

/// In the student's kernel, graded: hands in `value` as `name` of test
/// `test`, one line on stdout ([`wire::value_line`]) for the grader's
/// collector; nothing where `$SALIENCY_LAB_HAND_IN` is unset. A value is
/// handed in once: a second one for the same name is an error here, and the
/// grader counts it as tampering.
///
/// # Errors
/// If the value was handed in already, or cannot be written.
pub fn hand_in<T: HandIn>(test: &str, name: &str, value: &T) -> TestResult {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SENT: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
    if !graded() {
        return Ok(());
    }
    let first = SENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert((test.to_string(), name.to_string()));
    if !first {
        return Err(format!(
            "`{name}` of {test} was handed in before: the grader counts a second value as tampering"
        )
        .into());
    }
    print_line(&wire::value_line(test, name, value)?).map_err(|e| Error::io("stdout", e))?;
    Ok(())
}

/// In the student's kernel, graded: runs a test's first part (the student's
/// functions on the test's inputs, drawn from `seed`, ending with
/// [`hand_in`]s), catching a panic, and prints its outcome line
/// ([`wire::outcome_line`]) after the values. Where `$SALIENCY_LAB_HAND_IN`
/// is unset, a failure is printed.
pub fn probe(test: &str, seed: u64, body: impl FnOnce() -> TestResult) {
    let outcome = with_seed(seed, || {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(payload) => {
                Some(panic_message(payload.as_ref()).unwrap_or_else(|| "it panicked".into()))
            }
        }
    });
    if !graded() {
        if let Some(why) = outcome {
            eprintln!("{test} failed: {why}");
        }
        return;
    }
    if let Err(e) = print_line(&wire::outcome_line(test, outcome.as_deref())) {
        eprintln!("{test}: the outcome could not be printed: {e}");
    }
}

/// In the grader's kernel: value `name` of test `test`, as handed in and
/// copied to `dir` by the grader.
///
/// # Errors
/// [`Error::Format`] (naming the value) if it is missing or not a `T`.
pub fn handed_in<T: HandIn>(dir: impl AsRef<Path>, test: &str, name: &str) -> Result<T> {
    let path = dir.as_ref().join(test).join(format!("{name}.{}", T::EXT));
    if !path.is_file() {
        return Err(Error::format(
            &path,
            format!(
                "`{name}` was not handed in as a {}",
                std::any::type_name::<T>()
            ),
        ));
    }
    T::read(&path).map_err(|e| match e {
        Error::Format { what, .. } => Error::format(
            &path,
            format!(
                "`{name}` could not be read as a {}: {what}",
                std::any::type_name::<T>()
            ),
        ),
        other => other,
    })
}

/// In the grader's kernel: runs a test's checks with the test's inputs
/// drawn from `seed` (as its [`probe`] drew them), catching a panic, and
/// appends the verdict to `verdicts` (one line: id, `pass`/`fail`, message,
/// tab-separated).
pub fn check(verdicts: impl AsRef<Path>, test: &str, seed: u64, body: impl FnOnce() -> TestResult) {
    let (status, message) = with_seed(seed, || {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            Ok(Ok(())) => ("pass", String::new()),
            Ok(Err(e)) => ("fail", e.to_string()),
            Err(payload) => (
                "fail",
                panic_message(payload.as_ref()).unwrap_or_else(|| "the check panicked".into()),
            ),
        }
    });
    let line = format!(
        "{test}\t{status}\t{}\n",
        message.replace(['\n', '\r', '\t'], " ")
    );
    let path = verdicts.as_ref();
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("{}: {e}", path.display());
    }
}

/// A tensor that the checks compute alike for every submission (the
/// reference SmoothGrad, say), computed once per process: in the grader's
/// kernel, once per grading run.
///
/// # Errors
/// As `compute`.
pub fn cached(key: &str, compute: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Tensor>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(t) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Ok(t.shallow_clone());
    }
    let t = compute()?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_string(), t.shallow_clone());
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn round_trip<T: HandIn>(value: &T, dir: &Path, name: &str) -> T {
        let path = dir.join(format!("{name}.{}", T::EXT));
        let mut buf = Vec::new();
        value.write(&mut buf).unwrap();
        std::fs::write(&path, buf).unwrap();
        T::read(&path).unwrap()
    }

    #[test]
    fn values_travel_as_files_and_come_back_the_same() {
        let dir = std::env::temp_dir().join(format!("hand-in-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Tensor::from_slice(&[1.5f32, -2.0, f32::NAN, 4.0]).view([2, 2]);
        let back = round_trip(&t, &dir, "t");
        assert_eq!(back.size(), [2, 2]);
        assert_eq!(back.kind(), Kind::Float);
        assert!(back.get(1).get(0).double_value(&[]).is_nan());
        let d = Tensor::from_slice(&[1.0f64, 2.0]);
        assert_eq!(round_trip(&d, &dir, "d").kind(), Kind::Double);
        let i = Tensor::from_slice(&[3i32, -4]);
        assert_eq!(
            Vec::<i64>::try_from(round_trip(&i, &dir, "i")).unwrap(),
            [3, -4]
        );
        assert!(round_trip(&f64::NAN, &dir, "nan").is_nan());
        assert_eq!(round_trip(&vec![0.25f64, 1.0], &dir, "v"), [0.25, 1.0]);
        assert_eq!(round_trip(&7usize, &dir, "n"), 7);
        assert_eq!(round_trip(&"é".to_string(), &dir, "s"), "é");
        // A value handed in as one type is not read as another.
        assert!(Vec::<f64>::read(&dir.join("nan.npy")).is_err());
        assert!(f64::read(&dir.join("v.npy")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checks_record_passes_failures_and_panics() {
        let path = std::env::temp_dir().join(format!("verdicts-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        check(&path, "a", 1, || Ok(()));
        check(&path, "b", 1, || Err("no\tgood".into()));
        check(&path, "c", 1, || -> TestResult { panic!("x is {}", 3) });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "a\tpass\t\nb\tfail\tno good\nc\tfail\tx is 3\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_seed_draws_the_same_inputs_in_the_probe_and_in_the_check() {
        let drawn = |seed| {
            with_seed(seed, || {
                let mut d = draw();
                (
                    d.uniform(2.0, 8.0),
                    d.choose(2, &[0, 1, 2, 3, 4, 5]),
                    d.permutation(4),
                )
            })
        };
        assert_eq!(drawn(42), drawn(42));
        assert_ne!(drawn(42), drawn(43));
        let (u, two, perm) = drawn(7);
        assert!((2.0..8.0).contains(&u));
        assert!(two.len() == 2 && two[0] != two[1]);
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3]);
        // Outside a probe or a check: the default seed again.
        assert_eq!(seed(), DEFAULT_SEED);
    }

    #[test]
    fn normal_cdf_is_phi() {
        for (x, want) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746),
            (-1.0, 0.158_655_254),
            (2.5, 0.993_790_335),
        ] {
            assert!((normal_cdf(x) - want).abs() < 2e-7, "{x}");
        }
    }

    #[test]
    fn a_figure_row_shows_the_maps_it_was_drawn_from() {
        use crate::plot::{Colormap, Grid, Panel};
        let maps = Tensor::rand([3, 56, 56], (Kind::Float, tch::Device::Cpu));
        let others = Tensor::rand([3, 56, 56], (Kind::Float, tch::Device::Cpu));
        let mut grid = Grid::new(2, 3);
        for i in 0..3 {
            grid = grid
                .with_panel(
                    0,
                    i,
                    Panel::map(&others.get(i as i64), Colormap::Hot, "").unwrap(),
                )
                .with_panel(
                    1,
                    i,
                    Panel::map(&maps.get(i as i64), Colormap::Hot, "").unwrap(),
                );
        }
        let fig = grid.render().unwrap();
        figure_row_matches(&fig, 1, &maps, 0.85).unwrap();
        let why = figure_row_matches(&fig, 0, &maps, 0.85).unwrap_err();
        assert!(why.contains("row 1, column 1"), "{why}");
        assert!(figure_row_matches(&fig, 1, &maps.narrow(0, 0, 2), 0.85).is_err());
    }
}
