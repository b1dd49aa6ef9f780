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
    u32::try_from(h * w).ok()?;
    let plane = Plane { h, w, k, s, wo };
    // Only for a contiguous CPU float tensor (`with_f32_data`'s test).
    crate::support::with_f32_data(x, |input| {
        let indices = Tensor::empty(
            [size[0], size[1], (ho * wo) as i64],
            (Kind::Int64, x.device()),
        );
        // SAFETY: `indices` was just made, contiguous, of `planes * ho * wo`
        // 64-bit integers, and nothing else refers to its memory until this
        // function returns it.
        let output = unsafe {
            std::slice::from_raw_parts_mut(indices.data_ptr() as *mut i64, planes * ho * wo)
        };
        // Work goes out a few planes at a time to whichever thread is free:
        // right after a libtorch operation its OpenMP threads still spin on the
        // other cores for a while, and a fixed split would wait for the thread
        // that shares a core with one.
        let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1).max(1);
        let group = 4;
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
        std::thread::scope(|scope| {
            for _ in 1..threads.min(planes.div_ceil(group)) {
                scope.spawn(run);
            }
            run();
        });
        (indices, ho as i64, wo as i64)
    })
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

/// Per-thread work arrays.
struct Scratch {
    /// One input row split by column phase, each phase padded with -inf.
    phases: Vec<f32>,
    /// Each input row's maximum over each output column's window, and its
    /// column.
    row_max: Vec<f32>,
    row_col: Vec<u32>,
    /// The running maximum over a window's rows, and its index.
    max: Vec<f32>,
    arg: Vec<u32>,
}

impl Scratch {
    fn new(p: &Plane) -> Self {
        Scratch {
            phases: vec![0.0; p.s * p.phase_len()],
            row_max: vec![0.0; p.h * p.wo],
            row_col: vec![0; p.h * p.wo],
            max: vec![0.0; p.wo],
            arg: vec![0; p.wo],
        }
    }
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
    /// The length of one column phase: every output's window, padded.
    fn phase_len(&self) -> usize {
        self.wo + (self.k - 1) / self.s
    }

    /// The window maxima's indices of one plane `x` (`h * w`) into `out`
    /// (`ho * wo`).
    fn argmax(&self, x: &[f32], out: &mut [i64], t: &mut Scratch) {
        let (w, k, s, wo) = (self.w, self.k, self.s, self.wo);
        let len = self.phase_len();
        for (r, row) in x.chunks_exact(w).enumerate() {
            // Phase p holds columns p, p + s, p + 2s, ...; window j of
            // output o is column o * s + j = phase j % s, position o + j / s.
            for (p, phase) in t.phases.chunks_exact_mut(len).enumerate() {
                let valid = if p < w {
                    (w - p).div_ceil(s).min(len)
                } else {
                    0
                };
                if s == 1 {
                    phase[..valid].copy_from_slice(&row[p..p + valid]);
                } else {
                    // Whole strides first (this form vectorises).
                    let whole = ((w - p.min(w)) / s).min(valid);
                    for (d, c) in phase[..whole].iter_mut().zip(row[p..].chunks_exact(s)) {
                        *d = c[0];
                    }
                    for (q, d) in phase[..valid].iter_mut().enumerate().skip(whole) {
                        *d = row[q * s + p];
                    }
                }
                phase[valid..].fill(f32::NEG_INFINITY);
            }
            let max = &mut t.row_max[r * wo..(r + 1) * wo];
            let col = &mut t.row_col[r * wo..(r + 1) * wo];
            for (o, (m, c)) in max.iter_mut().zip(col.iter_mut()).enumerate() {
                *m = f32::NEG_INFINITY;
                *c = (o * s) as u32;
            }
            for j in 0..k {
                let start = (j % s) * len + j / s;
                let candidates = &t.phases[start..start + wo];
                for (o, ((m, c), &v)) in max
                    .iter_mut()
                    .zip(col.iter_mut())
                    .zip(candidates)
                    .enumerate()
                {
                    update(m, c, v, (o * s + j) as u32);
                }
            }
        }
        for (oh, out_row) in out.chunks_exact_mut(wo).enumerate() {
            let (r0, r1) = (oh * s, (oh * s + k).min(self.h));
            for (o, (m, a)) in t.max.iter_mut().zip(t.arg.iter_mut()).enumerate() {
                *m = f32::NEG_INFINITY;
                *a = (r0 * w + o * s) as u32;
            }
            for r in r0..r1 {
                let base = (r * w) as u32;
                let values = &t.row_max[r * wo..(r + 1) * wo];
                let cols = &t.row_col[r * wo..(r + 1) * wo];
                for (((m, a), &v), &c) in
                    t.max.iter_mut().zip(t.arg.iter_mut()).zip(values).zip(cols)
                {
                    update(m, a, v, base + c);
                }
            }
            for (o, &a) in out_row.iter_mut().zip(&t.arg) {
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
    #[ignore = "timing, not a check: cargo test --release --lib pool -- --ignored --nocapture"]
    fn time_against_libtorch() {
        crate::keep_freed_memory();
        for (c, hw) in [(64, 111), (128, 55), (256, 27)] {
            let x = Tensor::randn([5, c, hw, hw], (Kind::Float, Device::Cpu));
            let time = |f: &dyn Fn()| {
                f();
                let mut t: Vec<f64> = (0..21)
                    .map(|_| {
                        let s = std::time::Instant::now();
                        f();
                        s.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                t.sort_by(f64::total_cmp);
                t[10]
            };
            let lt = time(&|| {
                let _ = x.max_pool2d_with_indices([3, 3], [2, 2], [0, 0], [1, 1], true);
            });
            let idx = time(&|| {
                let _ = fast_indices(&x, 3, 2, true);
            });
            let all = time(&|| {
                let _ = max_pool2d(&x, 3, 2, true);
            });
            let (i, _, _) = fast_indices(&x, 3, 2, true).unwrap();
            let flat = x.flatten(2, 3);
            let gather = time(&|| {
                let _ = flat.gather(2, &i, false);
            });
            let take = time(&|| {
                let _ = x.take(&i);
            });
            println!("[5, {c}, {hw}, {hw}]: libtorch {lt:.2} ms, indices {idx:.2} ms, with gather {all:.2} ms, gather alone {gather:.2} ms, take {take:.2}");
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
