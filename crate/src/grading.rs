//! Support for grading the homework: the reference test's comparison
//! ([`compare_smoothgrad_maps`]), and for `scripts/grade.py` a record of the
//! outcome of each test cell in a file, written before the cell finishes.
//!
//! evcxr reports a panic on stderr and answers the cell as successful; its
//! stderr may even arrive after the next cell has started. The grader
//! therefore runs each test cell's body inside [`std::panic::catch_unwind`]
//! and calls [`record`], which appends one line per test to the file named by
//! `$SALIENCY_LAB_GRADING` (tab-separated: id, `pass`/`fail`, message).

use std::io::Write;

use tch::{Kind, Tensor};

use crate::error::panic_message;

/// What a test body returns: `Ok(())`, or the error its `?` met.
pub type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Records the outcome of test `id`: a panic (its message), an error
/// returned by `?`, or a pass. Does nothing when `$SALIENCY_LAB_GRADING` is
/// unset, so a graded notebook also runs by hand.
pub fn record(id: &str, outcome: std::thread::Result<TestResult>) {
    let (status, message) = match outcome {
        Ok(Ok(())) => ("pass", String::new()),
        Ok(Err(e)) => ("fail", e.to_string()),
        Err(payload) => (
            "fail",
            panic_message(payload.as_ref()).unwrap_or_else(|| "the test panicked".into()),
        ),
    };
    let Some(path) = std::env::var_os("SALIENCY_LAB_GRADING") else {
        return;
    };
    let line = format!("{id}\t{status}\t{}\n", message.replace(['\n', '\t'], " "));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The SmoothGrad homework's reference test: a student's max-abs maps
/// against the crate's, image by image, `[N, H, W]` each. They must agree in
/// structure (the Pearson correlation of their 8 x 8-pixel block means above
/// 0.9) and in size (the ratio of their norms within 0.8..1.25). Both are
/// Monte Carlo estimates with their own noise, so the bounds are wide enough
/// for any correct answer, whatever its noise or batching
/// (`crate/tests/grading.rs` checks 20 seeds), and narrow enough to catch one
/// noisy sample, blurring instead of noise, or unscaled noise.
///
/// # Errors
/// A message for the student naming the image and what differs.
pub fn compare_smoothgrad_maps(reference: &Tensor, student: &Tensor) -> Result<(), String> {
    if student.size() != reference.size() {
        return Err(format!(
            "the maps have shape {:?}, the reference's {:?}",
            student.size(),
            reference.size()
        ));
    }
    let pool = |m: &Tensor| {
        m.to_kind(Kind::Float)
            .unsqueeze(1)
            .avg_pool2d([8, 8], [8, 8], [0, 0], false, true, None::<i64>)
            .flatten(1, -1)
    };
    let (r, s) = (pool(reference), pool(student));
    for i in 0..reference.size()[0] {
        let (a, b) = (r.get(i), s.get(i));
        let (a, b) = (&a - a.mean(Kind::Float), &b - b.mean(Kind::Float));
        let corr = (&a * &b).sum(Kind::Float).double_value(&[])
            / (a.norm().double_value(&[]) * b.norm().double_value(&[]));
        let ratio =
            student.get(i).norm().double_value(&[]) / reference.get(i).norm().double_value(&[]);
        // NaN (a map of zeros or NaN) fails both tests.
        if corr.is_nan() || corr <= 0.9 {
            return Err(format!(
                "image {i}: the map's structure differs from SmoothGrad's (block correlation {corr:.2})"
            ));
        }
        if !(ratio > 0.8 && ratio < 1.25) {
            return Err(format!(
                "image {i}: the map is {ratio:.2} times SmoothGrad's (averaged over n noisy samples?)"
            ));
        }
    }
    Ok(())
}

/// A tensor that every submission's hidden test computes the same way (the
/// reference SmoothGrad, say), computed once per grading run: where
/// `$SALIENCY_LAB_GRADING_CACHE` is set (`scripts/grade.py` sets it, fresh for
/// each run), it is kept there as `<key>.npy` by the first notebook and read
/// by the others; elsewhere it is computed each time.
///
/// # Errors
/// As `compute`, or [`crate::Error::Io`] if the cache cannot be written.
pub fn cached(key: &str, compute: impl FnOnce() -> crate::Result<Tensor>) -> crate::Result<Tensor> {
    use ndarray_npy::ReadNpyExt;
    let Some(dir) = std::env::var_os("SALIENCY_LAB_GRADING_CACHE") else {
        return compute();
    };
    let path = std::path::Path::new(&dir).join(format!("{key}.npy"));
    if let Ok(f) = std::fs::File::open(&path) {
        if let Ok(a) = ndarray::ArrayD::<f32>::read_npy(f) {
            let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
            let data: Vec<f32> = a.iter().copied().collect();
            return Ok(Tensor::from_slice(&data).view(shape.as_slice()));
        }
    }
    let t = compute()?;
    // Written aside, then renamed: a notebook graded beside this one reads
    // the whole file or none.
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    crate::convert::write_npy_f32(&tmp, &t)?;
    std::fs::rename(&tmp, &path).map_err(|e| crate::Error::io(&path, e))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_recovered() {
        let r = std::panic::catch_unwind(|| -> TestResult { panic!("x is {}", 3) });
        assert_eq!(
            panic_message(r.unwrap_err().as_ref()).as_deref(),
            Some("x is 3")
        );
    }
}
