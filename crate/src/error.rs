//! The crate's one error type.
//!
//! Every public function returns [`Result`]; the messages name the file, the
//! shape or the value that was wrong, so that a notebook cell prints something
//! a student can act on instead of panicking and losing the kernel's state.

use std::path::PathBuf;

/// Everything that can go wrong in the lab, grouped by concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A data file (npz, npy, pickle, image, safetensors) is corrupt,
    /// truncated or not what the lab expects.
    #[error("{path}: {what}")]
    Format {
        /// The file concerned (for an npz member: `file.npz/member.npy`).
        path: PathBuf,
        /// What was wrong with it.
        what: String,
    },

    /// A required data or weights file could not be found.
    #[error("{what} not found: {path} ({hint})")]
    NotFound {
        /// Which asset was looked for.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },

    /// The weights file does not fit the model: a tensor is missing or has
    /// the wrong shape.
    #[error("{path}: {what}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// The first missing or mis-shaped tensor.
        what: String,
    },

    /// A tensor or array has the wrong shape, dtype or number of channels.
    #[error("{op}: expected {expected}, got {got}")]
    Shape {
        /// The operation that was given the tensor.
        op: &'static str,
        /// What it expects.
        expected: String,
        /// What it got.
        got: String,
    },

    /// A parameter is outside its valid range (noise < 0, zero samples, a
    /// batch size of 0, a class index outside 0..1000, NaN in an input ...).
    #[error("{op}: invalid {name} = {value}: {reason}")]
    Parameter {
        /// The operation or config concerned.
        op: &'static str,
        /// The parameter's name.
        name: &'static str,
        /// The offending value, as text.
        value: String,
        /// The valid range or the reason.
        reason: String,
    },

    /// A method needs something of the network that this network does not
    /// offer (Guided Backprop and Grad-CAM look inside it: a tch module is
    /// opaque).
    #[error("{op}: {needs}")]
    Unsupported {
        /// The method or operation.
        op: &'static str,
        /// What it needs, and how to give it.
        needs: String,
    },

    /// An error raised by libtorch (shown by its message's first line, not
    /// the C++ stack frames libtorch appends; `Debug` keeps them).
    #[error("libtorch: {}", libtorch_message(&.0.to_string()))]
    Torch(#[from] tch::TchError),

    /// Drawing a figure failed.
    #[error("plot: {0}")]
    Plot(String),
}

/// libtorch's own message without the "Exception raised from ..." line and
/// the C++ stack frames libtorch appends to it.
pub(crate) fn libtorch_message(text: &str) -> &str {
    let text = text.strip_prefix("Internal torch error: ").unwrap_or(text);
    text.split("\nException raised from")
        .next()
        .unwrap_or(text)
        .trim_end()
}

/// A tch method's panic (`Tensor::get` out of range, a shape mismatch in
/// `+`): tch unwraps libtorch's error, and the panic's message is that
/// error's `Debug`, every C++ frame included. Returns libtorch's message in
/// one line, or None for any other panic.
pub(crate) fn tch_panic_message(message: &str) -> Option<String> {
    let start = message.find("Torch(\"")? + "Torch(\"".len();
    let escaped = &message[start..];
    // The Debug text of the string: up to libtorch's first escaped newline.
    let end = escaped
        .find("\\n")
        .or_else(|| escaped.rfind("\")"))
        .unwrap_or(escaped.len());
    let text = escaped[..end]
        .replace("\\\"", "\"")
        .replace("\\'", "'")
        .replace("\\\\", "\\");
    Some(text.trim().to_string())
}

/// The message a panic carried (`panic!("...")` or a formatted one).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Format`]: `path` is not what was expected.
    pub fn format(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            what: what.into(),
        }
    }

    /// An [`Error::Shape`] for operation `op`.
    pub fn shape(op: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::Shape {
            op,
            expected: expected.into(),
            got: got.into(),
        }
    }

    /// An [`Error::Parameter`] for operation `op`.
    pub fn parameter(
        op: &'static str,
        name: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::Parameter {
            op,
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMES: &str = "\nException raised from select_symint at TensorShape.cpp:2258 (most recent call first):\nframe #0: c10::Error::Error(c10::SourceLocation) + 0x9d (0x7ff in libc10.so)\n";

    #[test]
    fn libtorch_errors_show_their_first_line() {
        let e = Error::from(tch::TchError::Torch(format!(
            "select(): index 99 out of range for tensor of size [25, 4, 4] at dimension 0{FRAMES}"
        )));
        assert_eq!(
            e.to_string(),
            "libtorch: select(): index 99 out of range for tensor of size [25, 4, 4] at dimension 0"
        );
    }

    #[test]
    fn a_tch_panic_becomes_libtorch_s_message() {
        // What tch's `unwrap` panics with: the error's Debug, escapes and all.
        let err = tch::TchError::Torch(format!(
            "The size of tensor a (3) must match \"b\" (4){FRAMES}"
        ));
        let message = format!("called `Result::unwrap()` on an `Err` value: {err:?}");
        assert_eq!(
            tch_panic_message(&message).as_deref(),
            Some("The size of tensor a (3) must match \"b\" (4)")
        );
        let short = tch::TchError::Torch("no frames".into());
        let message = format!("called `Result::unwrap()` on an `Err` value: {short:?}");
        assert_eq!(tch_panic_message(&message).as_deref(), Some("no frames"));
        assert_eq!(tch_panic_message("index out of bounds: the len is 3"), None);
    }
}
