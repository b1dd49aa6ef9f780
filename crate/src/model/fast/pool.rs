//! Max-pooling for contiguous (NCHW) float batches on the CPU, faster than
//! libtorch's and bit for bit the same, gradient included.
//!
//! libtorch's NCHW max-pooling kernel scans each window with a branch per
//! element; on activations, whose order is random, most of those branches
//! are mispredicted, and pooling was a quarter of the vanilla gradient's time
//! (`crate/benches/LOG.md`). Here the window's maximum is found for a whole
//! row of outputs at once without branches: each input row is split by
//! column phase (`x[c]` with `c % stride` fixed), so that a window's `j`-th
//! column is one contiguous array for all the row's outputs; each row's
//! maximum over the window's columns comes first, then the maximum over the
//! window's rows.
//!
//! The indices are libtorch's: the first maximum in the window's row-major
//! order, or the last NaN if the window holds any (libtorch takes a value
//! when it is greater than the maximum so far or NaN); taking each row's
//! first, then the first row's, by the same rule, finds the same element.
//! The pooled values are then `gather`ed from the input by those indices, in
//! the autograd graph, so the backward pass (`gather`'s, a `scatter_add` in
//! output order) adds the gradients in the order libtorch's pooling does.
//!
//! Planes go to libtorch's own intra-op threads, through its public
//! `at::parallel_for` (`parallel.rs`), a few at a time to whichever thread is
//! free.

use std::sync::Mutex;

use tch::{Kind, Tensor};

/// `x.max_pool2d(kernel, stride, 0, 1, ceil_mode)`, square windows: through
/// [`fast_indices`] for a contiguous CPU float batch, else libtorch's.
pub(crate) fn max_pool2d(x: &Tensor, kernel: i64, stride: i64, ceil_mode: bool) -> Tensor {
    match fast_indices(x, kernel, stride, ceil_mode) {
        Some((indices, ho, wo)) => gathered(x, &indices, ho, wo),
        None => x.max_pool2d(
            [kernel, kernel],
            [stride, stride],
            [0, 0],
            [1, 1],
            ceil_mode,
        ),
    }
}

/// The pooled values `[N, C, Ho, Wo]`: `x`'s values at `indices` (from
/// [`fast_indices`]), in the autograd graph.
fn gathered(x: &Tensor, indices: &Tensor, ho: i64, wo: i64) -> Tensor {
    let (n, c) = (x.size()[0], x.size()[1]);
    x.flatten(2, 3)
        .gather(2, indices, false)
        .view([n, c, ho, wo])
}

/// `x.max_pool2d_with_indices(kernel, stride, 0, 1, ceil_mode)` without
/// autograd, the indices flattened per plane `[N, C, Ho * Wo]`: through
/// [`fast_indices`] where it applies, else libtorch's.
pub(crate) fn max_pool2d_with_indices(
    x: &Tensor,
    kernel: i64,
    stride: i64,
    ceil_mode: bool,
) -> (Tensor, Tensor) {
    match fast_indices(x, kernel, stride, ceil_mode) {
        Some((indices, ho, wo)) => (gathered(x, &indices, ho, wo), indices),
        None => {
            let (values, indices) = x.max_pool2d_with_indices(
                [kernel, kernel],
                [stride, stride],
                [0, 0],
                [1, 1],
                ceil_mode,
            );
            (values, indices.flatten(2, 3))
        }
    }
}

/// The backward pass of max-pooling: `grad` `[N, C, Ho, Wo]` added, in
/// output order (libtorch's), into zeros of `input_size` at `indices` (as
/// [`max_pool2d_with_indices`] gives them).
pub(crate) fn max_pool2d_backward(grad: &Tensor, indices: &Tensor, input_size: &[i64]) -> Tensor {
    let (n, c) = (input_size[0], input_size[1]);
    Tensor::zeros(
        [n, c, input_size[2] * input_size[3]],
        (grad.kind(), grad.device()),
    )
    .scatter_add(2, indices, &grad.reshape([n, c, -1]))
    .view(input_size)
}

/// PyTorch's output size of a pooling without padding (`pooling_output_shape`),
/// or `None` where libtorch would refuse the shape.
fn output_size(input: usize, kernel: usize, stride: usize, ceil_mode: bool) -> Option<usize> {
    let span = input.checked_sub(kernel)? + if ceil_mode { stride - 1 } else { 0 };
    let mut out = span / stride + 1;
    // The last window must start inside the input.
    if ceil_mode && (out - 1) * stride >= input {
        out -= 1;
    }
    Some(out)
}

/// The indices `[N, C, Ho * Wo]` (within each `H x W` plane, libtorch's) of
/// the maxima of `x`'s windows, with `Ho` and `Wo`; `None` where this kernel
/// does not apply (not a contiguous 4-D CPU float tensor, a shape libtorch
/// would refuse, a plane too large for 32-bit indices).
fn fast_indices(
    x: &Tensor,
    kernel: i64,
    stride: i64,
    ceil_mode: bool,
) -> Option<(Tensor, i64, i64)> {
    let size = x.size();
    if size.len() != 4 || kernel < 1 || stride < 1 || size.iter().any(|&d| d < 1) {
        return None;
    }
    let dims: Vec<usize> = size
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let (planes, h, w) = (dims[0] * dims[1], dims[2], dims[3]);
    let (k, s) = (usize::try_from(kernel).ok()?, usize::try_from(stride).ok()?);
    let ho = output_size(h, k, s, ceil_mode)?;
    let wo = output_size(w, k, s, ceil_mode)?;
    let plane = Plane { h, w, k, s, wo };
    // Every index the kernel forms, the padding's included, fits 32 bits.
    u32::try_from(h * w + plane.phase_len() * s + k).ok()?;
    // SAFETY: `x` is a tensor this crate's forward pass made or was given,
    // and nothing writes it while the kernel reads it (the kernel runs to
    // completion before this function returns; the caller's other handles
    // are not used meanwhile).
    let input = unsafe { f32_data(x)? };
    let indices = Tensor::empty(
        [size[0], size[1], (ho * wo) as i64],
        (Kind::Int64, x.device()),
    );
    // SAFETY: `indices` was just made, contiguous, of `planes * ho * wo`
    // 64-bit integers, and nothing else refers to its memory until this
    // function returns it.
    let output =
        unsafe { std::slice::from_raw_parts_mut(indices.data_ptr() as *mut i64, planes * ho * wo) };
    // Work goes out a few planes at a time to whichever thread is free.
    let group = 4;
    let threads = usize::try_from(tch::get_num_threads())
        .unwrap_or(1)
        .clamp(1, planes.div_ceil(group));
    let work = Mutex::new(
        input
            .chunks(group * h * w)
            .zip(output.chunks_mut(group * ho * wo)),
    );
    let run = || {
        let mut scratch = Scratch::new(&plane);
        while let Some((inputs, outputs)) = work.lock().ok().and_then(|mut w| w.next()) {
            for (x, out) in inputs
                .chunks_exact(h * w)
                .zip(outputs.chunks_exact_mut(ho * wo))
            {
                plane.argmax(x, out, &mut scratch);
            }
        }
    };
    super::parallel::on_threads(threads, &run);
    Some((indices, ho as i64, wo as i64))
}

/// The values of `t` where `t` is a contiguous float tensor on the CPU (else
/// `None`), without copying them.
///
/// # Safety
/// Nothing may write `t`'s storage while the slice lives: the borrow keeps
/// the storage alive, but another tensor sharing it could still change it.
unsafe fn f32_data(t: &Tensor) -> Option<&[f32]> {
    if t.kind() != Kind::Float || t.device() != tch::Device::Cpu || !t.is_contiguous() {
        return None;
    }
    let len = t.numel();
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: a contiguous CPU float tensor holds `numel` f32 values from its
    // data pointer; the caller guarantees nothing writes them meanwhile.
    Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, len) })
}

/// One plane's geometry: input `h x w`, window `k`, stride `s`, output
/// rows `wo` wide.
#[derive(Debug, Clone, Copy)]
struct Plane {
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    wo: usize,
}

/// Per-thread work arrays. Rows are `len` ([`Plane::phase_len`]) long: a
/// row's output columns `0..wo`, then padding whose values no output reads.
struct Scratch {
    /// The plane split by column phase: phase `p` holds each row's columns
    /// `p, p + s, p + 2s, ...`, padded with -inf, the phases one after the
    /// other, each `h * len + (k - 1) / s` long.
    phases: Vec<f32>,
    /// Each row's maximum over each output column's window, and its index
    /// in the plane.
    row_max: Vec<f32>,
    row_arg: Vec<u32>,
    /// The index in the plane of each row's window's first column.
    first: Vec<u32>,
    /// The maximum over one output row's windows, and its index.
    max: Vec<f32>,
    arg: Vec<u32>,
}

impl Scratch {
    fn new(p: &Plane) -> Self {
        let len = p.phase_len();
        let first = (0..p.h)
            .flat_map(|r| (0..len).map(move |o| (r * p.w + o * p.s) as u32))
            .collect();
        Scratch {
            phases: vec![f32::NEG_INFINITY; p.s * p.phase_stride()],
            row_max: vec![0.0; p.h * len],
            row_arg: vec![0; p.h * len],
            first,
            max: vec![0.0; p.wo],
            arg: vec![0; p.wo],
        }
    }
}

/// The column phases' geometry for `h` rows of `wo` outputs, window `k`,
/// stride `s`: the length of one row of a phase (every output's window,
/// padded) and of one phase of the whole plane. Inlined, so that a window
/// and stride known at compile time stay constants.
#[inline(always)]
fn phase_geometry(h: usize, wo: usize, k: usize, s: usize) -> (usize, usize) {
    let len = wo + (k - 1) / s;
    (len, h * len + (k - 1) / s)
}

/// libtorch's update rule, without a branch: `(value, index)` replaces
/// `(max, arg)` where `value > max` or `value` is NaN.
#[inline(always)]
fn update(max: &mut f32, arg: &mut u32, value: f32, index: u32) {
    let take = 0u32.wrapping_sub(u32::from((value > *max) | value.is_nan()));
    *max = f32::from_bits((value.to_bits() & take) | (max.to_bits() & !take));
    *arg = (index & take) | (*arg & !take);
}

impl Plane {
    /// The length of one row of a column phase: every output's window,
    /// padded.
    fn phase_len(&self) -> usize {
        phase_geometry(self.h, self.wo, self.k, self.s).0
    }

    /// The length of one column phase of the whole plane.
    fn phase_stride(&self) -> usize {
        phase_geometry(self.h, self.wo, self.k, self.s).1
    }

    /// The window maxima's indices of one plane `x` (`h * w`) into `out`
    /// (`ho * wo`).
    fn argmax(&self, x: &[f32], out: &mut [i64], t: &mut Scratch) {
        // The window and stride as constants where they are SqueezeNet's
        // (and the common 2 x 2), so that the loops compile for them.
        match (self.k, self.s) {
            (3, 2) => self.argmax_with(3, 2, x, out, t),
            (2, 2) => self.argmax_with(2, 2, x, out, t),
            (k, s) => self.argmax_with(k, s, x, out, t),
        }
    }

    #[inline(always)]
    fn argmax_with(&self, k: usize, s: usize, x: &[f32], out: &mut [i64], t: &mut Scratch) {
        let (h, w, wo) = (self.h, self.w, self.wo);
        let (len, stride) = phase_geometry(h, wo, k, s);
        // Phase p, row r, position q: column q * s + p; window j of output o
        // is column o * s + j: phase j % s, position o + j / s.
        let whole = (w / s).min(len);
        for (r, row) in x.chunks_exact(w).enumerate() {
            for (q, columns) in row.chunks_exact(s).enumerate().take(whole) {
                for (p, &v) in columns.iter().enumerate() {
                    t.phases[p * stride + r * len + q] = v;
                }
            }
            for p in 0..s {
                let valid = if p < w {
                    (w - p).div_ceil(s).min(len)
                } else {
                    0
                };
                let phase = &mut t.phases[p * stride + r * len..p * stride + (r + 1) * len];
                for (q, d) in phase.iter_mut().enumerate().take(valid).skip(whole) {
                    *d = row[q * s + p];
                }
                phase[valid..].fill(f32::NEG_INFINITY);
            }
        }
        // Each row's maximum over each window's columns, the whole plane in
        // one sweep per column of the window (the padding's too).
        let n = h * len;
        let (max, arg, first) = (&mut t.row_max[..n], &mut t.row_arg[..n], &t.first[..n]);
        max.copy_from_slice(&t.phases[..n]);
        arg.copy_from_slice(first);
        for j in 1..k {
            let start = (j % s) * stride + j / s;
            let candidates = &t.phases[start..start + n];
            let j = j as u32;
            for (((m, a), &v), &f) in max
                .iter_mut()
                .zip(arg.iter_mut())
                .zip(candidates)
                .zip(first)
            {
                update(m, a, v, f + j);
            }
        }
        // Then over each window's rows (rows past the plane, in ceil mode,
        // hold no candidates).
        let (max, arg) = (&mut t.max[..wo], &mut t.arg[..wo]);
        for (oh, out_row) in out.chunks_exact_mut(wo).enumerate() {
            let r0 = oh * s;
            max.copy_from_slice(&t.row_max[r0 * len..r0 * len + wo]);
            arg.copy_from_slice(&t.row_arg[r0 * len..r0 * len + wo]);
            for r in r0 + 1..(r0 + k).min(h) {
                let values = &t.row_max[r * len..r * len + wo];
                let args = &t.row_arg[r * len..r * len + wo];
                for (((m, a), &v), &i) in max.iter_mut().zip(arg.iter_mut()).zip(values).zip(args) {
                    update(m, a, v, i);
                }
            }
            for (o, &a) in out_row.iter_mut().zip(arg.iter()) {
                *o = i64::from(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// libtorch's pooling and gradient against this module's, bit for bit.
    fn check(x: &Tensor, kernel: i64, stride: i64, ceil_mode: bool) {
        let a = x.detach().set_requires_grad(true);
        let b = x.detach().set_requires_grad(true);
        let (ya, ia) = a.max_pool2d_with_indices(
            [kernel, kernel],
            [stride, stride],
            [0, 0],
            [1, 1],
            ceil_mode,
        );
        let (fast, ho, wo) = fast_indices(&b, kernel, stride, ceil_mode).expect("applies");
        assert_eq!(ia.size()[2..], [ho, wo]);
        assert!(
            ia.flatten(2, 3).equal(&fast),
            "indices, k {kernel} s {stride} ceil {ceil_mode}"
        );
        let yb = max_pool2d(&b, kernel, stride, ceil_mode);
        assert!(ya.isnan().equal(&yb.isnan()));
        assert!(ya
            .nan_to_num(0.0, None, None)
            .equal(&yb.nan_to_num(0.0, None, None)));
        let g = Tensor::randn(ya.size(), (Kind::Float, Device::Cpu));
        let ga = Tensor::run_backward(
            &[(ya * &g).nansum(None::<&[i64]>, false, Kind::Float)],
            &[&a],
            false,
            false,
        );
        let gb = Tensor::run_backward(
            &[(yb * &g).nansum(None::<&[i64]>, false, Kind::Float)],
            &[&b],
            false,
            false,
        );
        assert!(
            ga[0].equal(&gb[0]),
            "gradient, k {kernel} s {stride} ceil {ceil_mode}"
        );
    }

    #[test]
    fn pooling_equals_libtorchs_with_ties_nans_and_infinities() {
        tch::manual_seed(3);
        // Values on a coarse grid (many ties), zeros (ReLU's), NaN and -inf.
        let mut x = (Tensor::randn([2, 3, 17, 23], (Kind::Float, Device::Cpu)) * 2.0)
            .round()
            .relu();
        let flat = x.view([-1]);
        for (i, v) in [
            (5, f64::NAN),
            (40, f64::NAN),
            (41, f64::NAN),
            (90, f64::NEG_INFINITY),
        ] {
            let _ = flat.get(i).fill_(v);
        }
        let _ = x.get(1).get(2).fill_(f64::NEG_INFINITY);
        x = x.contiguous();
        for (kernel, stride) in [(3, 2), (2, 2), (3, 1), (1, 1), (3, 3), (5, 2), (4, 3)] {
            for ceil_mode in [false, true] {
                check(&x, kernel, stride, ceil_mode);
            }
        }
        // SqueezeNet's three poolings.
        for (c, hw) in [(64, 111), (128, 55), (256, 27)] {
            check(
                &Tensor::randn([2, c, hw, hw], (Kind::Float, Device::Cpu)),
                3,
                2,
                true,
            );
        }
    }

    #[test]
    fn other_inputs_go_to_libtorch() {
        let x = Tensor::randn([1, 2, 8, 8], (Kind::Float, Device::Cpu));
        assert!(fast_indices(&x.permute([0, 1, 3, 2]), 3, 2, true).is_none());
        assert!(fast_indices(&x.to_kind(Kind::Double), 3, 2, true).is_none());
        assert!(fast_indices(&x, 9, 2, false).is_none());
        assert_eq!(output_size(111, 3, 2, true), Some(55));
        assert_eq!(output_size(6, 3, 2, true), Some(3));
        assert_eq!(output_size(6, 3, 2, false), Some(2));
        assert_eq!(output_size(2, 3, 2, false), None);
    }
}
