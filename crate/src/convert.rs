//! Conversions between tch tensors and ndarray arrays, for saving `.npy`
//! files and for drawing.

use ndarray::{ArrayD, IxDyn};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// A tensor's values as an `f32` array of the same shape (copied to the CPU).
///
/// # Errors
/// [`Error::Torch`] if the tensor cannot be converted to `f32`.
pub fn to_array_f32(t: &Tensor) -> Result<ArrayD<f32>> {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .f_to_kind(Kind::Float)?
        .contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let mut data = vec![0f32; t.numel()];
    t.f_copy_data(&mut data, t.numel())?;
    ArrayD::from_shape_vec(IxDyn(&shape), data)
        .map_err(|e| Error::shape("to_array_f32", "a dense tensor", e.to_string()))
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

/// A tensor printed as PyTorch prints it, summarised: at most three entries
/// at each edge of an axis longer than a thousand elements in all, four
/// decimals (`tensor([[ 9.0406,  1.1808, ...,  5.2129], ...])`). For
/// notebooks, where tch's own `print` writes every element.
///
/// ```
/// let t = tch::Tensor::from_slice(&[1.5f32, -2.0, 3.25]);
/// assert_eq!(saliency_lab::convert::pretty(&t), "tensor([ 1.5000, -2.0000,  3.2500])");
/// ```
#[must_use]
pub fn pretty(t: &Tensor) -> String {
    let Ok(a) = to_array_f32(t) else {
        return format!("tensor(<{:?} {:?}>)", t.kind(), t.size());
    };
    let summarise = a.len() > 1000;
    let width = a.iter().map(|v| format!("{v:.4}").len()).max().unwrap_or(1);
    let mut out = String::from("tensor(");
    fmt_axis(&a.view(), summarise, width, 7, &mut out);
    out.push(')');
    out
}

fn fmt_axis(
    a: &ndarray::ArrayViewD<'_, f32>,
    summarise: bool,
    width: usize,
    indent: usize,
    out: &mut String,
) {
    use ndarray::Axis;
    if a.ndim() == 0 {
        out.push_str(&format!("{:.4}", a[[]]));
        return;
    }
    let n = a.shape()[0];
    let shown: Vec<Option<usize>> = if summarise && n > 6 {
        (0..3)
            .map(Some)
            .chain([None])
            .chain((n - 3..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    out.push('[');
    for (k, i) in shown.iter().enumerate() {
        if k > 0 {
            out.push(',');
            if a.ndim() == 1 {
                // PyTorch wraps a row at 80 columns.
                let per_line = ((80 - indent) / (width + 2)).max(1);
                if k % per_line == 0 {
                    out.push('\n');
                    out.push_str(&" ".repeat(indent + 1));
                } else {
                    out.push(' ');
                }
            } else {
                out.push_str(&"\n".repeat(a.ndim() - 1));
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        match i {
            None => out.push_str(&format!("{:>width$}", "...")),
            Some(i) if a.ndim() == 1 => out.push_str(&format!("{:>width$.4}", a[[*i]])),
            Some(i) => fmt_axis(
                &a.index_axis(Axis(0), *i),
                summarise,
                width,
                indent + 1,
                out,
            ),
        }
    }
    out.push(']');
}
