//! Conversions between tch tensors and ndarray arrays, for saving `.npy`
//! files and for drawing.

use ndarray::ArrayD;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// A tensor's values as an `f32` array of the same shape (copied to the CPU):
/// tch's own conversion.
///
/// # Errors
/// [`Error::Torch`] if the tensor cannot be converted to `f32`.
pub fn to_array_f32(t: &Tensor) -> Result<ArrayD<f32>> {
    Ok((&t.detach()).try_into()?)
}

/// Writes an array as a `.npy` file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_npy<A, D>(path: impl AsRef<std::path::Path>, a: &ndarray::Array<A, D>) -> Result<()>
where
    A: ndarray_npy::WritableElement,
    D: ndarray::Dimension,
{
    let path = path.as_ref();
    ndarray_npy::write_npy(path, a)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

/// Writes a tensor as a float32 `.npy` file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_npy_f32(path: impl AsRef<std::path::Path>, t: &Tensor) -> Result<()> {
    write_npy(path, &to_array_f32(t)?)
}

/// A tensor printed as PyTorch prints it with `torch.set_printoptions`'
/// defaults (`print(t)`): precision 4; scientific notation when the nonzero
/// finite magnitudes span more than a factor 1000, exceed 1e8 or fall below
/// 1e-4, integers printed `3.` when every value is whole; tensors of more
/// than 1000 elements summarised with 3 items at each edge of every axis (the
/// choice of notation made on the items shown); rows wrapped at 80 columns;
/// an integer tensor's dtype named unless it is int64. For notebooks, where
/// tch's own `print` writes every element.
///
/// ```
/// use tch::Tensor;
/// use saliency_lab::convert::pretty;
/// assert_eq!(pretty(&Tensor::from_slice(&[1.5f32, -2.0, 3.25])), "tensor([ 1.5000, -2.0000,  3.2500])");
/// assert_eq!(pretty(&Tensor::from_slice(&[1e-3f32, 2e-6])), "tensor([1.0000e-03, 2.0000e-06])");
/// assert_eq!(pretty(&Tensor::from_slice(&[1.0f32, -2.0])), "tensor([ 1., -2.])");
/// assert_eq!(pretty(&Tensor::from_slice(&[3i64, 10])), "tensor([ 3, 10])");
/// ```
#[must_use]
pub fn pretty(t: &Tensor) -> String {
    const THRESHOLD: usize = 1000;
    let t = t.detach().to_device(Device::Cpu);
    let float = t.is_floating_point();
    let values = if float {
        t.f_to_kind(Kind::Double)
    } else {
        t.f_to_kind(Kind::Int64)
    };
    let Ok(values) = values else {
        return format!("tensor(<{:?} {:?}>)", t.kind(), t.size());
    };
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat: Vec<f64> = if float {
        Vec::<f64>::try_from(values.flatten(0, -1)).unwrap_or_default()
    } else {
        Vec::<i64>::try_from(values.flatten(0, -1))
            .unwrap_or_default()
            .into_iter()
            .map(|v| v as f64)
            .collect()
    };
    let summarize = flat.len() > THRESHOLD;
    let mut shown = Vec::new();
    summarized_values(&flat, &shape, summarize, &mut shown);
    let fmt = Formatter::new(&shown, float);
    let mut body = String::new();
    if shape.is_empty() {
        body.push_str(&fmt.format(flat.first().copied().unwrap_or(0.0)));
    } else {
        tensor_str(&flat, &shape, 7, summarize, &fmt, &mut body);
    }
    let suffix = match t.kind() {
        Kind::Float | Kind::Int64 => String::new(),
        Kind::Double => ", dtype=torch.float64".into(),
        Kind::Int => ", dtype=torch.int32".into(),
        Kind::Uint8 => ", dtype=torch.uint8".into(),
        Kind::Bool => ", dtype=torch.bool".into(),
        k => format!(", dtype={k:?}"),
    };
    format!("tensor({body}{suffix})")
}

const EDGE: usize = 3;

/// The items `print` shows (PyTorch's `get_summarized_data`), in order.
fn summarized_values(flat: &[f64], shape: &[usize], summarize: bool, out: &mut Vec<f64>) {
    match shape {
        [] => out.extend(flat.first()),
        [n, rest @ ..] => {
            let stride: usize = rest.iter().product();
            for i in shown_indices(*n, summarize).into_iter().flatten() {
                summarized_values(&flat[i * stride..(i + 1) * stride], rest, summarize, out);
            }
        }
    }
}

/// The indices shown along an axis of `n`, `None` for the `...`.
fn shown_indices(n: usize, summarize: bool) -> Vec<Option<usize>> {
    if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    }
}

/// PyTorch's `_Formatter`: one notation and width for the whole tensor.
struct Formatter {
    float: bool,
    int_mode: bool,
    sci: bool,
    width: usize,
}

impl Formatter {
    fn new(values: &[f64], float: bool) -> Self {
        let mut f = Formatter {
            float,
            int_mode: true,
            sci: false,
            width: 1,
        };
        if !float {
            f.width = values
                .iter()
                .map(|v| format!("{}", *v as i64).len())
                .max()
                .unwrap_or(1);
            return f;
        }
        let nonzero: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| v.is_finite() && *v != 0.0)
            .collect();
        if nonzero.is_empty() {
            return f;
        }
        let min = nonzero.iter().fold(f64::INFINITY, |m, v| m.min(v.abs()));
        let max = nonzero.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        f.int_mode = nonzero.iter().all(|v| v.ceil() == *v);
        f.sci = max / min > 1000.0 || max > 1.0e8 || (!f.int_mode && min < 1.0e-4);
        f.width = nonzero
            .iter()
            .map(|&v| {
                if f.sci {
                    sci(v).len()
                } else if f.int_mode {
                    format!("{v:.0}").len() + 1
                } else {
                    format!("{v:.4}").len()
                }
            })
            .max()
            .unwrap_or(1);
        f
    }

    fn format(&self, v: f64) -> String {
        let s = if !self.float {
            format!("{}", v as i64)
        } else if self.sci {
            sci(v)
        } else if self.int_mode {
            if v.is_finite() {
                format!("{v:.0}.")
            } else {
                python_special(v)
            }
        } else {
            format!("{v:.4}")
        };
        let s = if v.is_nan() || v.is_infinite() {
            python_special(v)
        } else {
            s
        };
        format!("{s:>width$}", width = self.width)
    }
}

/// `nan`, `inf`, `-inf` as Python writes them.
fn python_special(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// Python's `'{:.4e}'.format(v)`: a two-digit exponent at least.
fn sci(v: f64) -> String {
    if !v.is_finite() {
        return python_special(v);
    }
    let s = format!("{v:.4e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!(
        "{mantissa}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

/// PyTorch's `_tensor_str_with_formatter` over the flat values of `shape`.
fn tensor_str(
    flat: &[f64],
    shape: &[usize],
    indent: usize,
    summarize: bool,
    fmt: &Formatter,
    out: &mut String,
) {
    let n = shape[0];
    if shape.len() == 1 {
        // `_vector_str`: elements_per_line from the width, rows joined by ",\n".
        let per_line = ((80usize.saturating_sub(indent)) / (fmt.width + 2)).max(1);
        let items: Vec<String> = shown_indices(n, summarize)
            .into_iter()
            .map(|i| match i {
                Some(i) => fmt.format(flat[i]),
                None => " ...".into(),
            })
            .collect();
        let lines: Vec<String> = items.chunks(per_line).map(|l| l.join(", ")).collect();
        out.push('[');
        out.push_str(&lines.join(&format!(",\n{}", " ".repeat(indent + 1))));
        out.push(']');
        return;
    }
    let stride: usize = shape[1..].iter().product();
    let sep = format!(
        ",{}{}",
        "\n".repeat(shape.len() - 1),
        " ".repeat(indent + 1)
    );
    out.push('[');
    for (k, i) in shown_indices(n, summarize).into_iter().enumerate() {
        if k > 0 {
            out.push_str(&sep);
        }
        match i {
            Some(i) => tensor_str(
                &flat[i * stride..(i + 1) * stride],
                &shape[1..],
                indent + 1,
                summarize,
                fmt,
                out,
            ),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}
