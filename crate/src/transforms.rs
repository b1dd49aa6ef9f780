//! The lab's image transforms: `preprocess` (an RGB image to the normalised
//! tensor SqueezeNet expects), `rescale`, `deprocess` (back to an RGB image)
//! and `blur_image` (scipy's `gaussian_filter1d` along height and width).

use ndarray::{Array3, Array4, ArrayBase, ArrayView3, ArrayView4, Axis, Data, Ix3};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::support::check_finite;

/// SqueezeNet's (torchvision's ImageNet) per-channel mean, RGB.
pub const SQUEEZENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// SqueezeNet's (torchvision's ImageNet) per-channel standard deviation, RGB.
pub const SQUEEZENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The input size of the lab's model.
pub const IMAGE_SIZE: u32 = 224;

/// An `[H, W, C]` image as the crate's functions take it: an owned
/// [`Array3`] (what [`ImagenetVal::image`](crate::ImagenetVal::image)
/// returns, so that a notebook can keep it in a variable), a view of one
/// (`data.images.index_axis(Axis(0), i)`), or a reference to either.
pub trait AsImage<T = u8> {
    /// The image as a view.
    fn as_image(&self) -> ArrayView3<'_, T>;
}

impl<T, S: Data<Elem = T>> AsImage<T> for ArrayBase<S, Ix3> {
    fn as_image(&self) -> ArrayView3<'_, T> {
        self.view()
    }
}

impl<T, I: AsImage<T> + ?Sized> AsImage<T> for &I {
    fn as_image(&self) -> ArrayView3<'_, T> {
        (**self).as_image()
    }
}

fn channel_tensor(values: [f32; 3]) -> Tensor {
    Tensor::from_slice(&values).view([1, 3, 1, 1])
}

/// The lab's `preprocess`: an RGB image `[H, W, 3]` (`u8`) to a normalised
/// `[1, 3, H', W']` float tensor, `(x / 255 - mean) / std`, after resizing
/// the shorter side to `size` as torchvision's `T.Resize(size)` does (an image
/// whose shorter side already is `size`, like the lab's, is not resampled).
///
/// # Errors
/// [`Error::Shape`] if the image is not `[H, W, 3]` or is empty.
pub fn preprocess(image: impl AsImage, size: u32) -> Result<Tensor> {
    let image = image.as_image();
    check_hwc("preprocess", image.shape())?;
    let (h, w) = (image.shape()[0], image.shape()[1]);
    let resized;
    let image = if h.min(w) == size as usize {
        image
    } else {
        let rgb = array_to_rgb_image(image)?;
        resized = rgb_image_to_array(&resize_shorter_side(&rgb, size)?)?;
        resized.view()
    };
    let t = hwc_u8_to_nchw(image.insert_axis(Axis(0)))?;
    Ok(normalize(&t))
}

/// `preprocess` for a batch of equally sized images `[N, H, W, 3]` with no
/// resizing: the lab's `torch.cat([preprocess(x) for x in X])`. Returns
/// `[N, 3, H, W]`.
///
/// # Errors
/// [`Error::Shape`] if the batch is not `[N, H, W, 3]` or is empty.
pub fn preprocess_batch(images: ArrayView4<'_, u8>) -> Result<Tensor> {
    let s = images.shape();
    if s[0] == 0 {
        return Err(Error::shape(
            "preprocess_batch",
            "[N>0, H, W, 3]",
            format!("{s:?}"),
        ));
    }
    check_hwc("preprocess_batch", &s[1..])?;
    Ok(normalize(&hwc_u8_to_nchw(images)?))
}

fn normalize(t: &Tensor) -> Tensor {
    (t.to_kind(Kind::Float) / 255.0 - channel_tensor(SQUEEZENET_MEAN))
        / channel_tensor(SQUEEZENET_STD)
}

fn check_hwc(op: &'static str, shape: &[usize]) -> Result<()> {
    if shape.len() != 3 || shape[2] != 3 || shape[0] == 0 || shape[1] == 0 {
        return Err(Error::shape(
            op,
            "an RGB image [H, W, 3]",
            format!("{shape:?}"),
        ));
    }
    Ok(())
}

fn hwc_u8_to_nchw(images: ArrayView4<'_, u8>) -> Result<Tensor> {
    let shape: Vec<i64> = images.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<u8> = images.iter().copied().collect();
    Ok(Tensor::f_from_slice(&data)?
        .f_view(shape.as_slice())?
        .permute([0, 3, 1, 2])
        .contiguous())
}

/// The lab's `rescale`: `(x - min) / (max - min)`, to `[0, 1]`. A constant
/// tensor (where the lab would divide by zero) maps to zeros.
///
/// # Errors
/// [`Error::Parameter`] if `x` is empty or holds NaN.
pub fn rescale(x: &Tensor) -> Result<Tensor> {
    check_finite("rescale", x)?;
    let low = x.min();
    let high = x.max();
    let range = &high - &low;
    let range = range.where_self(&range.gt(0.0), &range.ones_like());
    Ok((x - low) / range)
}

/// The lab's `deprocess`: a normalised `[1, 3, H, W]` (or `[3, H, W]`) tensor
/// back to an RGB image `[H, W, 3]`: `x * std + mean`, optionally `rescale`d
/// to the full range, then torchvision's `ToPILImage` (`x * 255`, truncated
/// to `u8`; values outside `[0, 1]` are clamped first rather than wrapped).
///
/// # Errors
/// [`Error::Shape`] for any other shape, [`Error::Parameter`] for NaN.
pub fn deprocess(x: &Tensor, should_rescale: bool) -> Result<Array3<u8>> {
    let x = match x.size().as_slice() {
        [1, 3, _, _] => x.squeeze_dim(0),
        [3, _, _] => x.shallow_clone(),
        s => {
            return Err(Error::shape(
                "deprocess",
                "[1, 3, H, W] or [3, H, W]",
                format!("{s:?}"),
            ))
        }
    };
    let x = x.to_device(Device::Cpu).to_kind(Kind::Float);
    check_finite("deprocess", &x)?;
    let x = x * channel_tensor(SQUEEZENET_STD).squeeze_dim(0)
        + channel_tensor(SQUEEZENET_MEAN).squeeze_dim(0);
    let x = if should_rescale { rescale(&x)? } else { x };
    let hwc = (x * 255.0)
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous();
    tensor_to_array3_u8(&hwc)
}

fn tensor_to_array3_u8(t: &Tensor) -> Result<Array3<u8>> {
    let s: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let mut data = vec![0u8; t.numel()];
    t.f_copy_data(&mut data, t.numel())?;
    Array3::from_shape_vec((s[0], s[1], s[2]), data)
        .map_err(|e| Error::shape("tensor to array", "[H, W, C]", e.to_string()))
}

/// The 1-D Gaussian kernel of scipy's `gaussian_filter1d` (order 0): radius
/// `int(truncate * sigma + 0.5)`, weights `exp(-x^2 / (2 sigma^2))`
/// normalised by their sum (taken in numpy's pairwise order, so the weights
/// are scipy's to the last bit).
fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let radius = (truncate * sigma + 0.5) as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let sum = pairwise_sum(&w);
    w.into_iter().map(|v| v / sum).collect()
}

/// numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, &v| acc + v)
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// scipy's `mode='reflect'` (`d c b a | a b c d | d c b a`): the index that
/// `i` (possibly outside `0..n`) reads.
fn reflect(i: i64, n: i64) -> usize {
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - 1 - m }) as usize
}

/// Pixel types `blur_image` works on, with scipy's rule for storing the
/// filtered (double precision) value back into the input's dtype.
pub trait BlurPixel: Copy {
    /// To double precision.
    fn to_f64(self) -> f64;
    /// Back from double precision, as scipy stores into this dtype.
    fn from_f64(v: f64) -> Self;
}

impl BlurPixel for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl BlurPixel for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl BlurPixel for u8 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    /// scipy (`ndimage`) converts to integer outputs by truncation toward
    /// zero; results stay within 0..=255 since the kernel sums to one.
    fn from_f64(v: f64) -> Self {
        v.clamp(0.0, 255.0) as u8
    }
}

/// The lab's `blur_image`: a Gaussian blur of an `[H, W, C]` image along
/// height and then width, exactly scipy's
/// `gaussian_filter1d(gaussian_filter1d(x, sigma, axis=0), sigma, axis=1)`
/// (truncate 4.0, `reflect` mode, computed in double precision and stored in
/// the input's type after each pass, as scipy does; for `u8` that truncates,
/// as in the lab's sample answer).
///
/// # Errors
/// [`Error::Parameter`] if `sigma` is not a positive finite number;
/// [`Error::Shape`] if the image is empty or not 3-D.
pub fn blur_image<T: BlurPixel>(image: impl AsImage<T>, sigma: f64) -> Result<Array3<T>> {
    let image = image.as_image();
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::parameter(
            "blur_image",
            "sigma",
            sigma,
            "must be a positive finite number",
        ));
    }
    if image.is_empty() {
        return Err(Error::shape(
            "blur_image",
            "a non-empty [H, W, C] image",
            format!("{:?}", image.shape()),
        ));
    }
    let kernel = gaussian_kernel(sigma, 4.0);
    let once = filter_axis(image, &kernel, Axis(0));
    Ok(filter_axis(once.view(), &kernel, Axis(1)))
}

/// CS231n's `blur_image(X, sigma)` on a batch: each channel of each image
/// of `x` `[N, C, H, W]` (float) blurred along height and then width, exactly
/// `gaussian_filter1d(gaussian_filter1d(X, sigma, axis=2), sigma, axis=3)`
/// on float32 (as [`blur_image`], computed in double precision and stored
/// as float32 after each pass). Returns float32 on `x`'s device (the blur
/// itself runs on the CPU).
///
/// # Errors
/// [`Error::Parameter`] if `sigma` is not a positive finite number;
/// [`Error::Shape`] if `x` is not a non-empty 4-D float tensor.
pub fn blur_batch(x: &Tensor, sigma: f64) -> Result<Tensor> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::parameter(
            "blur_batch",
            "sigma",
            sigma,
            "must be a positive finite number",
        ));
    }
    let size = x.size();
    if size.len() != 4 || size.contains(&0) || !x.is_floating_point() {
        return Err(Error::shape(
            "blur_batch",
            "a non-empty float batch [N, C, H, W]",
            format!("{size:?} {:?}", x.kind()),
        ));
    }
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let flat = x
        .detach()
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .contiguous()
        .view([n * c, h, w]);
    let values = Vec::<f32>::try_from(flat.flatten(0, -1))?;
    let planes = Array3::from_shape_vec(((n * c) as usize, h as usize, w as usize), values)
        .map_err(|e| Error::shape("blur_batch", "[N, C, H, W]", e.to_string()))?;
    let kernel = gaussian_kernel(sigma, 4.0);
    let once = filter_axis(planes.view(), &kernel, Axis(1));
    let twice = filter_axis(once.view(), &kernel, Axis(2));
    let data: Vec<f32> = twice.iter().copied().collect();
    Ok(Tensor::from_slice(&data)
        .view([n, c, h, w])
        .to_device(x.device()))
}

fn filter_axis<T: BlurPixel>(image: ArrayView3<'_, T>, kernel: &[f64], axis: Axis) -> Array3<T> {
    let radius = kernel.len() / 2;
    let n = image.len_of(axis);
    let mut out = Array3::from_elem(image.raw_dim(), T::from_f64(0.0));
    // The line padded by `radius` on each side, as scipy's line buffer.
    let mut line = vec![0.0; n + 2 * radius];
    for (lane_in, mut lane_out) in image.lanes(axis).into_iter().zip(out.lanes_mut(axis)) {
        for (k, v) in line.iter_mut().enumerate() {
            *v = lane_in[reflect(k as i64 - radius as i64, n as i64)].to_f64();
        }
        // scipy's symmetric-kernel loop (NI_Correlate1D): the centre tap, then
        // the pairs from the outermost inwards.
        for (i, o) in lane_out.iter_mut().enumerate() {
            let c = i + radius;
            let mut acc = line[c] * kernel[radius];
            for j in (1..=radius).rev() {
                acc += (line[c - j] + line[c + j]) * kernel[radius - j];
            }
            *o = T::from_f64(acc);
        }
    }
    out
}

/// Resizes so that the shorter side is `size`, keeping the aspect ratio (the
/// longer side is `int(size * long / short)`, as torchvision computes it),
/// with a bilinear (triangle) filter widened when shrinking, which is how PIL
/// antialiases. An image whose shorter side already is `size` is returned as
/// is.
///
/// # Errors
/// [`Error::Parameter`] if `size` is 0 or the image is empty.
pub fn resize_shorter_side(img: &image::RgbImage, size: u32) -> Result<image::RgbImage> {
    let (w, h) = img.dimensions();
    if size == 0 || w == 0 || h == 0 {
        return Err(Error::parameter(
            "resize",
            "size",
            format!("{size} (image {w}x{h})"),
            "size and image must be non-empty",
        ));
    }
    let short = w.min(h);
    if short == size {
        return Ok(img.clone());
    }
    let long = (u64::from(size) * u64::from(w.max(h)) / u64::from(short)) as u32;
    let (nw, nh) = if w <= h { (size, long) } else { (long, size) };
    Ok(image::imageops::resize(
        img,
        nw,
        nh,
        image::imageops::FilterType::Triangle,
    ))
}

/// An `image::RgbImage` as an `[H, W, 3]` array.
///
/// # Errors
/// Never in practice; the signature leaves room for size overflow.
pub fn rgb_image_to_array(img: &image::RgbImage) -> Result<Array3<u8>> {
    let (w, h) = img.dimensions();
    Array3::from_shape_vec((h as usize, w as usize, 3), img.as_raw().clone())
        .map_err(|e| Error::shape("rgb image", "[H, W, 3]", e.to_string()))
}

/// An `[H, W, 3]` array as an `image::RgbImage`.
///
/// # Errors
/// [`Error::Shape`] if the array is not `[H, W, 3]`.
pub fn array_to_rgb_image(a: impl AsImage) -> Result<image::RgbImage> {
    let a = a.as_image();
    check_hwc("array to image", a.shape())?;
    let (h, w) = (a.shape()[0] as u32, a.shape()[1] as u32);
    let data: Vec<u8> = a.iter().copied().collect();
    image::RgbImage::from_raw(w, h, data)
        .ok_or_else(|| Error::shape("array to image", "[H, W, 3]", format!("{:?}", a.shape())))
}

/// A batch `[N, H, W, 3]` of `u8` images from a list of equally sized ones.
///
/// # Errors
/// [`Error::Shape`] if the list is empty or the sizes differ.
pub fn stack_images(images: &[Array3<u8>]) -> Result<Array4<u8>> {
    let views: Vec<_> = images.iter().map(|a| a.view()).collect();
    ndarray::stack(Axis(0), &views).map_err(|e| {
        let shapes: Vec<_> = images.iter().map(|a| a.shape().to_vec()).collect();
        Error::shape(
            "stack_images",
            "images of one size",
            format!("{shapes:?} ({e})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn reflect_mode_is_half_sample_symmetric() {
        // scipy 'reflect': d c b a | a b c d | d c b a
        let got: Vec<usize> = (-4..8).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, [3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]);
    }

    #[test]
    fn kernel_radius_and_sum() {
        // sigma 1, truncate 4 -> radius int(4.5) = 4 -> 9 taps.
        let k = gaussian_kernel(1.0, 4.0);
        assert_eq!(k.len(), 9);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // centre / neighbour = exp(0.5)
        assert!((k[4] / k[5] - 0.5f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn blur_of_a_constant_is_the_constant_and_u8_truncates() {
        let img = Array3::<f32>::from_elem((5, 4, 3), 2.5);
        let out = blur_image(img.view(), 3.0).unwrap();
        assert!(out.iter().all(|&v| (v - 2.5).abs() < 1e-6));
        // u8 truncates after each pass, as scipy does. Values from
        // gaussian_filter1d(gaussian_filter1d(a, s, axis=0), s, axis=1):
        // [0, 10] with sigma 100 -> [4.99.., 5.00..] -> [4, 5] -> [3, 4].
        let img = array![[[0u8]], [[10u8]]];
        let out = blur_image(img.view(), 100.0).unwrap();
        assert_eq!(out.as_slice().unwrap(), [3, 4]);
        let img = array![[[0u8], [10], [20]], [[30], [40], [50]]];
        let out = blur_image(img.view(), 1.0).unwrap();
        assert_eq!(out.as_slice().unwrap(), [14, 20, 25, 23, 29, 34]);
    }

    #[test]
    fn blur_rejects_bad_sigma() {
        let img = Array3::<f32>::zeros((2, 2, 3));
        for s in [0.0, -1.0, f64::NAN] {
            let msg = blur_image(img.view(), s).unwrap_err().to_string();
            assert!(msg.contains("sigma"), "{msg}");
        }
    }

    #[test]
    fn preprocess_rejects_wrong_channels() {
        let img = Array3::<u8>::zeros((4, 4, 4));
        let msg = preprocess(img.view(), 4).unwrap_err().to_string();
        assert!(msg.contains("[4, 4, 4]"), "{msg}");
    }

    #[test]
    fn preprocess_normalises_per_channel() {
        // A white pixel: (1 - mean) / std per channel.
        let img = Array3::<u8>::from_elem((2, 2, 3), 255);
        let t = preprocess(img.view(), 2).unwrap();
        assert_eq!(t.size(), [1, 3, 2, 2]);
        for c in 0..3 {
            let v = t.double_value(&[0, c, 1, 1]);
            let want = (1.0 - SQUEEZENET_MEAN[c as usize]) / SQUEEZENET_STD[c as usize];
            assert!((v - f64::from(want)).abs() < 1e-6);
        }
    }

    #[test]
    fn deprocess_inverts_preprocess_within_one_grey_level() {
        let img = Array3::from_shape_fn((3, 5, 3), |(h, w, c)| (h * 50 + w * 7 + c * 30) as u8);
        let back = deprocess(&preprocess(img.view(), 3).unwrap(), false).unwrap();
        for (a, b) in img.iter().zip(back.iter()) {
            assert!((i16::from(*a) - i16::from(*b)).abs() <= 1, "{a} vs {b}");
        }
    }

    #[test]
    fn rescale_maps_to_unit_range_and_constant_to_zero() {
        let x = Tensor::from_slice(&[2.0f32, 4.0, 6.0]);
        let r = rescale(&x).unwrap();
        assert_eq!(Vec::<f32>::try_from(&r).unwrap(), [0.0, 0.5, 1.0]);
        let c = rescale(&Tensor::from_slice(&[3.0f32; 4])).unwrap();
        assert_eq!(Vec::<f32>::try_from(&c).unwrap(), [0.0; 4]);
        let nan = Tensor::from_slice(&[1.0f32, f32::NAN]);
        assert!(rescale(&nan).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn resize_keeps_aspect_like_torchvision() {
        let img = image::RgbImage::new(300, 200);
        let r = resize_shorter_side(&img, 224).unwrap();
        // int(224 * 300 / 200) = 336
        assert_eq!(r.dimensions(), (336, 224));
    }
}
