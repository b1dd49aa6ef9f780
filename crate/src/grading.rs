//! Support for `scripts/grade.py`: records the outcome of each homework test
//! cell in a file, written before the cell finishes.
//!
//! evcxr reports a panic on stderr and answers the cell as successful; its
//! stderr may even arrive after the next cell has started. The grader
//! therefore runs each test cell's body inside [`std::panic::catch_unwind`]
//! and calls [`record`], which appends one line per test to the file named by
//! `$SALIENCY_LAB_GRADING` (tab-separated: id, `pass`/`fail`, message).

use std::io::Write;

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
