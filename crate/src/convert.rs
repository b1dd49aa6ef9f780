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
    let t = t.detach().to_device(Device::Cpu).f_to_kind(Kind::Float)?.contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let mut data = vec![0f32; t.numel()];
    t.f_copy_data(&mut data, t.numel())?;
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::shape("to_array_f32", "a dense tensor", e.to_string()))
}

/// Writes a tensor as a float32 `.npy` file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_npy_f32(path: impl AsRef<std::path::Path>, t: &Tensor) -> Result<()> {
    let path = path.as_ref();
    ndarray_npy::write_npy(path, &to_array_f32(t)?)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}
