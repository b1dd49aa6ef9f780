//! How a handed-in value travels from the student's kernel to the grader:
//! one line on the kernel's stdout per value, which the grader's collector
//! takes from the kernel's output messages while the test's cell runs
//! (`scripts/handin.py` reads the same format; a test ties the two).
//!
//! ```text
//! SALIENCY_LAB_HAND_IN {"test":"test_shape","name":"g","ext":"npy","data":"<base64>"}
//! SALIENCY_LAB_HAND_IN {"test":"test_shape","outcome":"ok"}
//! SALIENCY_LAB_HAND_IN {"test":"test_shape","outcome":"failed","message":"..."}
//! ```
//!
//! Tensors, numbers and vectors of numbers travel as `.npy`, text as UTF-8,
//! figures as JSON: their structure ([`PanelInfo`], serialised as it is) and
//! their pixels as PNG.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, ReadableElement, WritableElement, WriteNpyExt};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::plot::{Figure, PanelInfo};

/// What starts every hand-in line (the grader finds it anywhere in a line).
pub const HAND_IN_MARK: &str = "SALIENCY_LAB_HAND_IN ";

/// A value a test can hand in: written by the student's kernel, read back by
/// the grader's. The types and their extensions are those of
/// `scripts/handin.py`'s `VALUE_EXT`.
pub trait HandIn: Sized {
    /// The file extension this type is written with.
    const EXT: &'static str;
    /// Writes the value to `w`.
    ///
    /// # Errors
    /// If the value cannot be converted or written.
    fn write(&self, w: &mut dyn Write) -> Result<()>;
    /// Reads the value from the file at `path`.
    ///
    /// # Errors
    /// [`Error::Format`] if the file does not hold this type.
    fn read(path: &Path) -> Result<Self>;
}

/// The line that hands in `value` as `name` of test `test`.
///
/// # Errors
/// If the value cannot be written.
pub fn value_line<T: HandIn>(test: &str, name: &str, value: &T) -> Result<String> {
    let mut bytes = Vec::new();
    value.write(&mut bytes)?;
    let record = serde_json::json!({
        "test": test,
        "name": name,
        "ext": T::EXT,
        "data": base64::engine::general_purpose::STANDARD.encode(bytes),
    });
    Ok(format!("{HAND_IN_MARK}{record}"))
}

/// The line that reports a test's first part: `None` when it ran to its
/// end, else why it did not.
#[must_use]
pub fn outcome_line(test: &str, failure: Option<&str>) -> String {
    let record = match failure {
        None => serde_json::json!({ "test": test, "outcome": "ok" }),
        Some(why) => serde_json::json!({ "test": test, "outcome": "failed", "message": why }),
    };
    format!("{HAND_IN_MARK}{record}")
}

fn npy_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("not the value expected: {e}"))
}

fn read_array<A: ReadableElement>(path: &Path) -> Result<ArrayD<A>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    ArrayD::<A>::read_npy(f).map_err(|e| npy_error(path, e))
}

fn write_array<A: WritableElement>(w: &mut dyn Write, a: &ArrayD<A>) -> Result<()> {
    a.write_npy(w)
        .map_err(|e| Error::io("hand-in", std::io::Error::other(e.to_string())))
}

fn tensor_array<A: tch::kind::Element + Copy>(t: &Tensor) -> Result<ArrayD<A>> {
    Ok((&t.detach()).try_into()?)
}

fn array_tensor<A: tch::kind::Element + Copy>(a: &ArrayD<A>) -> Result<Tensor> {
    // A `.npy` may be in Fortran order; tch takes a standard layout.
    Ok(Tensor::try_from(&a.as_standard_layout())?)
}

/// Tensors keep their kind where `.npy` has it (float32, float64, int64,
/// bool); other integer kinds travel as int64, other float kinds as float32.
impl HandIn for Tensor {
    const EXT: &'static str = "npy";
    fn write(&self, w: &mut dyn Write) -> Result<()> {
        match self.kind() {
            Kind::Double => write_array(w, &tensor_array::<f64>(self)?),
            Kind::Bool => write_array(w, &tensor_array::<bool>(self)?),
            Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64 => {
                write_array(w, &tensor_array::<i64>(self)?)
            }
            _ => write_array(w, &tensor_array::<f32>(self)?),
        }
    }
    fn read(path: &Path) -> Result<Self> {
        if let Ok(a) = read_array::<f32>(path) {
            return array_tensor(&a);
        }
        if let Ok(a) = read_array::<f64>(path) {
            return array_tensor(&a);
        }
        if let Ok(a) = read_array::<i64>(path) {
            return array_tensor(&a);
        }
        array_tensor(&read_array::<bool>(path)?)
    }
}

macro_rules! hand_in_numbers {
    ($($t:ty),+) => {$(
        /// A number travels as a 0-dimensional `.npy` (NaN and infinities included).
        impl HandIn for $t {
            const EXT: &'static str = "npy";
            fn write(&self, w: &mut dyn Write) -> Result<()> {
                write_array(w, &ndarray::arr0(*self).into_dyn())
            }
            fn read(path: &Path) -> Result<Self> {
                let a = read_array::<$t>(path)?;
                if a.ndim() != 0 {
                    return Err(npy_error(path, format!("shape {:?}, expected a single number", a.shape())));
                }
                Ok(a.iter().copied().next().unwrap_or_default())
            }
        }
        /// A vector travels as a 1-dimensional `.npy`.
        impl HandIn for Vec<$t> {
            const EXT: &'static str = "npy";
            fn write(&self, w: &mut dyn Write) -> Result<()> {
                write_array(w, &ndarray::Array1::from(self.clone()).into_dyn())
            }
            fn read(path: &Path) -> Result<Self> {
                let a = read_array::<$t>(path)?;
                if a.ndim() != 1 {
                    return Err(npy_error(path, format!("shape {:?}, expected a vector", a.shape())));
                }
                Ok(a.iter().copied().collect())
            }
        }
    )+};
}
hand_in_numbers!(f64, f32, i64, bool);

/// An index travels as an int64 `.npy`.
impl HandIn for usize {
    const EXT: &'static str = "npy";
    fn write(&self, w: &mut dyn Write) -> Result<()> {
        let v = i64::try_from(*self)
            .map_err(|_| Error::parameter("hand_in", "value", self, "over i64::MAX"))?;
        HandIn::write(&v, w)
    }
    fn read(path: &Path) -> Result<Self> {
        let v = i64::read(path)?;
        usize::try_from(v).map_err(|_| npy_error(path, format!("{v} is not an index")))
    }
}

/// Text travels as UTF-8.
impl HandIn for String {
    const EXT: &'static str = "txt";
    fn write(&self, w: &mut dyn Write) -> Result<()> {
        w.write_all(self.as_bytes())
            .map_err(|e| Error::io("hand-in", e))
    }
    fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        String::from_utf8(bytes).map_err(|e| npy_error(path, e))
    }
}

/// A figure as it travels: its grid and panels as [`Figure`] records them,
/// its pixels as base64 PNG.
#[derive(serde::Serialize, serde::Deserialize)]
struct FigureWire {
    grid: Option<(usize, usize)>,
    panels: Vec<PanelInfo>,
    png: String,
}

/// A figure travels as its structure (grid, panels) and its pixels as PNG,
/// one JSON object.
impl HandIn for Figure {
    const EXT: &'static str = "json";
    fn write(&self, w: &mut dyn Write) -> Result<()> {
        let wire = FigureWire {
            grid: self.grid(),
            panels: self.panels().to_vec(),
            png: base64::engine::general_purpose::STANDARD.encode(self.to_png()?),
        };
        serde_json::to_writer(w, &wire).map_err(|e| Error::io("hand-in", e.into()))
    }
    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let wire: FigureWire = serde_json::from_slice(&text).map_err(|e| npy_error(path, e))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(wire.png)
            .map_err(|e| npy_error(path, e))?;
        let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .map_err(|e| npy_error(path, e))?
            .to_rgb8();
        let mut fig = Figure::blank(image.width(), image.height());
        fig.rgb = image.into_raw();
        fig.grid = wire.grid;
        fig.panels = wire.panels;
        Ok(fig)
    }
}
