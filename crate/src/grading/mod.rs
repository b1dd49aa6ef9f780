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
//! Run as it stands (the lab, a student trying the visible tests), the cell
//! is one piece: `hand_in!` only checks the values' types. Graded by
//! `scripts/grade.py`, the first part runs in the student's sandboxed kernel,
//! inside [`probe`], where [`hand_in`] writes each value to the folder named
//! by `$SALIENCY_LAB_HAND_IN`; the grader takes those files out as data, and
//! its own kernel, outside the sandbox, reads them back ([`handed_in`]) and
//! runs the checks inside [`check`], which records the verdict in a file of
//! the grader's. Code in the student's notebook can write any value it likes
//! into its hand-in folder, but no verdict: a value is only ever the
//! student's answer, checked by code the student cannot reach.
//!
//! [`compare_smoothgrad_maps`] is the SmoothGrad homework's reference test.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyExt, ReadableElement, WritableElement, WriteNpyExt};
use tch::{Device, Kind, Tensor};

use crate::error::{panic_message, Error, Result};
use crate::plot::{Figure, PanelInfo, PanelKind};

/// What a test body returns: `Ok(())`, or the error its `?` met.
pub type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// The environment variable naming the folder where [`hand_in`] writes;
/// unset, [`hand_in`] writes nothing.
pub const HAND_IN_ENV: &str = "SALIENCY_LAB_HAND_IN";

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

/// A value a test can hand in: written by the student's kernel, read back by
/// the grader's. Tensors, numbers and vectors of numbers travel as `.npy`,
/// text as UTF-8, figures as their structure and PNG.
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

fn tensor_array<A: tch::kind::Element + Copy + Default>(
    t: &Tensor,
    kind: Kind,
) -> Result<ArrayD<A>> {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .f_to_kind(kind)?
        .contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let mut data = vec![A::default(); t.numel()];
    t.f_copy_data(&mut data, t.numel())?;
    ArrayD::from_shape_vec(IxDyn(&shape), data)
        .map_err(|e| Error::shape("hand_in", "a dense tensor", e.to_string()))
}

fn array_tensor<A: tch::kind::Element + Copy>(a: &ArrayD<A>) -> Tensor {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<A> = a.iter().copied().collect();
    Tensor::from_slice(&data).view(shape.as_slice())
}

/// Tensors keep their kind where `.npy` has it (float32, float64, int64,
/// bool); other integer kinds travel as int64, other float kinds as float32.
impl HandIn for Tensor {
    const EXT: &'static str = "npy";
    fn write(&self, w: &mut dyn Write) -> Result<()> {
        match self.kind() {
            Kind::Double => write_array(w, &tensor_array::<f64>(self, Kind::Double)?),
            Kind::Bool => write_array(w, &tensor_array::<bool>(self, Kind::Bool)?),
            Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64 => {
                write_array(w, &tensor_array::<i64>(self, Kind::Int64)?)
            }
            _ => write_array(w, &tensor_array::<f32>(self, Kind::Float)?),
        }
    }
    fn read(path: &Path) -> Result<Self> {
        if let Ok(a) = read_array::<f32>(path) {
            return Ok(array_tensor(&a));
        }
        if let Ok(a) = read_array::<f64>(path) {
            return Ok(array_tensor(&a));
        }
        if let Ok(a) = read_array::<i64>(path) {
            return Ok(array_tensor(&a));
        }
        let a = read_array::<bool>(path)?;
        let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
        let data: Vec<u8> = a.iter().map(|&b| u8::from(b)).collect();
        Ok(Tensor::from_slice(&data)
            .view(shape.as_slice())
            .to_kind(Kind::Bool))
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

/// A figure travels as its structure (grid, panels) and its pixels as PNG,
/// one JSON object.
impl HandIn for Figure {
    const EXT: &'static str = "json";
    fn write(&self, w: &mut dyn Write) -> Result<()> {
        let wire = FigureWire {
            grid: self.grid(),
            panels: self.panels().iter().map(PanelWire::from).collect(),
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
        fig.panels = wire.panels.into_iter().map(PanelInfo::from).collect();
        Ok(fig)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FigureWire {
    grid: Option<(usize, usize)>,
    panels: Vec<PanelWire>,
    png: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PanelWire {
    row: usize,
    col: usize,
    kind: String,
    title: String,
    x: u32,
    y: u32,
    size: u32,
}

impl From<&PanelInfo> for PanelWire {
    fn from(p: &PanelInfo) -> Self {
        PanelWire {
            row: p.row,
            col: p.col,
            kind: format!("{:?}", p.kind),
            title: p.title.clone(),
            x: p.x,
            y: p.y,
            size: p.size,
        }
    }
}

impl From<PanelWire> for PanelInfo {
    fn from(p: PanelWire) -> Self {
        let kind = match p.kind.as_str() {
            "Image" => PanelKind::Image,
            "Map" => PanelKind::Map,
            "Overlay" => PanelKind::Overlay,
            _ => PanelKind::Empty,
        };
        PanelInfo {
            row: p.row,
            col: p.col,
            kind,
            title: p.title,
            x: p.x,
            y: p.y,
            size: p.size,
        }
    }
}

fn hand_in_dir(test: &str) -> Option<PathBuf> {
    std::env::var_os(HAND_IN_ENV).map(|d| Path::new(&d).join(test))
}

/// A file created afresh: a second hand-in of one value is refused.
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// In the student's kernel, graded: writes `value` as `name` of test `test`
/// to the folder named by `$SALIENCY_LAB_HAND_IN` (nothing where it is
/// unset). A value is handed in once: a second hand-in of the same name is an
/// error, and marks the test as tampered with.
///
/// # Errors
/// If the value was handed in already, or cannot be written.
pub fn hand_in<T: HandIn>(test: &str, name: &str, value: &T) -> TestResult {
    let Some(dir) = hand_in_dir(test) else {
        return Ok(());
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(format!("{name}.{}", T::EXT));
    let mut f = match create_new(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = create_new(&dir.join("tampered"));
            return Err(format!(
                "`{name}` of {test} was handed in before the test handed it in: the grader counts a second value as tampering"
            )
            .into());
        }
        Err(e) => return Err(Error::io(&path, e).into()),
    };
    let mut buf = Vec::new();
    value.write(&mut buf)?;
    f.write_all(&buf).map_err(|e| Error::io(&path, e))?;
    Ok(())
}

/// In the student's kernel, graded: runs a test's first part (the student's
/// functions on the test's inputs, ending with [`hand_in`]s), catching a
/// panic, and writes its outcome (`outcome.txt`: `ok`, or `failed` and the
/// message) beside the values. Where `$SALIENCY_LAB_HAND_IN` is unset, a
/// failure is printed.
pub fn probe(test: &str, body: impl FnOnce() -> TestResult) {
    let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(payload) => {
            Some(panic_message(payload.as_ref()).unwrap_or_else(|| "it panicked".into()))
        }
    };
    let text = match &outcome {
        None => "ok\n".to_string(),
        Some(why) => format!("failed\n{why}\n"),
    };
    let Some(dir) = hand_in_dir(test) else {
        if let Some(why) = outcome {
            eprintln!("{test} failed: {why}");
        }
        return;
    };
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| create_new(&dir.join("outcome.txt")))
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            let _ = create_new(&dir.join("tampered"));
        }
        eprintln!("{test}: the outcome could not be written: {e}");
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

/// In the grader's kernel: runs a test's checks, catching a panic, and
/// appends the verdict to `verdicts` (one line: id, `pass`/`fail`, message,
/// tab-separated).
pub fn check(verdicts: impl AsRef<Path>, test: &str, body: impl FnOnce() -> TestResult) {
    let (status, message) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => ("pass", String::new()),
        Ok(Err(e)) => ("fail", e.to_string()),
        Err(payload) => (
            "fail",
            panic_message(payload.as_ref()).unwrap_or_else(|| "the check panicked".into()),
        ),
    };
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
        let ratio = student.get(i).to_kind(Kind::Float).norm().double_value(&[])
            / reference.get(i).norm().double_value(&[]);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        check(&path, "a", || Ok(()));
        check(&path, "b", || Err("no\tgood".into()));
        check(&path, "c", || -> TestResult { panic!("x is {}", 3) });
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "a\tpass\t\nb\tfail\tno good\nc\tfail\tx is 3\n");
        std::fs::remove_file(&path).unwrap();
    }
}
