//! Loading the lab's images: `imagenet_val_25.npz` (25 ImageNet validation
//! images, their labels and the 1000 class names), read directly in Rust, and
//! single image files (PNG/JPEG) for the command-line tool.

mod pickle;

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4, Axis};
use ndarray_npy::ReadNpyExt;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// Number of ImageNet classes (the width of SqueezeNet's score vector).
pub const NUM_CLASSES: usize = 1000;

/// The lab's data set: images `[N, H, W, 3]` (RGB, `u8`), labels and names.
#[derive(Debug, Clone)]
pub struct ImagenetVal {
    /// RGB images, `[N, H, W, 3]`, values 0..=255.
    pub images: Array4<u8>,
    /// ImageNet class index of each image, in `0..1000`.
    pub labels: Vec<i64>,
    /// The 1000 class names, indexed by class (`class_names[0]` is
    /// `"tench, Tinca tinca"`).
    pub class_names: Vec<String>,
}

impl ImagenetVal {
    /// Number of images.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i`, `[H, W, 3]`: a copy of its 150 KB, which a notebook can
    /// keep in a variable (`let img = data.image(2)?;`; evcxr cannot keep a
    /// view that borrows `data` from one cell to the next). For a view
    /// without the copy: `data.images.index_axis(Axis(0), i)`.
    ///
    /// # Errors
    /// [`Error::Parameter`] if `i` is out of range.
    pub fn image(&self, i: usize) -> Result<Array3<u8>> {
        self.check_index(i)?;
        Ok(self.images.index_axis(Axis(0), i).to_owned())
    }

    /// The class name of image `i` (its label's name), as the lab's titles.
    ///
    /// # Errors
    /// [`Error::Parameter`] if `i` is out of range.
    pub fn title(&self, i: usize) -> Result<&str> {
        self.check_index(i)?;
        self.class_name(self.labels[i])
    }

    /// The name of class `class` (`0..1000`).
    ///
    /// # Errors
    /// [`Error::Parameter`] if `class` is not a valid class index.
    pub fn class_name(&self, class: i64) -> Result<&str> {
        usize::try_from(class)
            .ok()
            .and_then(|c| self.class_names.get(c))
            .map(String::as_str)
            .ok_or_else(|| {
                Error::parameter(
                    "class_name",
                    "class",
                    class,
                    format!("outside 0..{}", self.class_names.len()),
                )
            })
    }

    /// The class names of all images' labels, in order (the lab's titles).
    #[must_use]
    pub fn titles(&self) -> Vec<String> {
        self.labels
            .iter()
            .map(|&l| self.class_name(l).unwrap_or("?").to_string())
            .collect()
    }

    /// The first `n` images (fewer if there are fewer).
    #[must_use]
    pub fn head(&self, n: usize) -> ImagenetVal {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        ImagenetVal {
            images: self.images.select(Axis(0), &idx),
            labels: self.labels[..idx.len()].to_vec(),
            class_names: self.class_names.clone(),
        }
    }

    /// The images `indices` (in that order), with their labels.
    ///
    /// # Errors
    /// [`Error::Parameter`] if an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Result<ImagenetVal> {
        for &i in indices {
            self.check_index(i)?;
        }
        Ok(ImagenetVal {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        })
    }

    /// The lab's `load_imagenet_val(num)`: shuffle the indices (seeded, so a
    /// notebook is reproducible) and keep the first `num` images.
    ///
    /// # Errors
    /// [`Error::Parameter`] if `num` is 0 or more than the number of images.
    pub fn sample(&self, num: usize, seed: u64) -> Result<ImagenetVal> {
        if num == 0 || num > self.len() {
            return Err(Error::parameter(
                "sample",
                "num",
                num,
                format!("must be in 1..={}", self.len()),
            ));
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        idx.truncate(num);
        self.select(&idx)
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i < self.len() {
            Ok(())
        } else {
            Err(Error::parameter(
                "image index",
                "i",
                i,
                format!("outside 0..{}", self.len()),
            ))
        }
    }
}

/// Reads `imagenet_val_25.npz` (or any npz with the same members) as the lab
/// does: `X` `[N, H, W, 3]` `u8`, `y` `[N]` `i64`, and the pickled
/// `label_map` dict of class names, all in file order.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the
/// member if the archive is corrupt or truncated, a member is missing, has the
/// wrong dtype or shape, or a label lies outside the class names.
///
/// ```no_run
/// let data = saliency_lab::load_imagenet_val(saliency_lab::assets::data_path()?)?;
/// assert_eq!(data.images.shape(), &[25, 224, 224, 3]);
/// println!("{}", data.title(0)?);
/// # Ok::<(), saliency_lab::Error>(())
/// ```
pub fn load_imagenet_val(path: impl AsRef<Path>) -> Result<ImagenetVal> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::format(path, format!("not a valid npz (zip) archive: {e}")))?;

    let mut member = |name: &str| -> Result<(Vec<u8>, PathBuf)> {
        let inner = path.join(format!("{name}.npy"));
        let npy = format!("{name}.npy");
        let stored = [npy.as_str(), name]
            .into_iter()
            .find(|n| zip.file_names().any(|f| f == *n))
            .ok_or_else(|| Error::format(path, format!("no member `{npy}` in the npz")))?
            .to_owned();
        let mut f = zip
            .by_name(&stored)
            .map_err(|e| Error::format(&inner, format!("cannot open member: {e}")))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(|e| Error::format(&inner, format!("corrupt or truncated member: {e}")))?;
        Ok((bytes, inner))
    };

    let (x_bytes, x_path) = member("X")?;
    let (y_bytes, y_path) = member("y")?;
    let (names_bytes, names_path) = member("label_map")?;

    let images = Array4::<u8>::read_npy(x_bytes.as_slice()).map_err(|e| {
        Error::format(
            &x_path,
            format!("expected a 4-D uint8 array [N, H, W, 3]: {e}"),
        )
    })?;
    let labels = ndarray::Array1::<i64>::read_npy(y_bytes.as_slice())
        .map_err(|e| Error::format(&y_path, format!("expected a 1-D int64 array: {e}")))?
        .to_vec();
    let class_names =
        pickle::class_names_from_pickle(npy_payload(&names_bytes, &names_path)?, &names_path)?;

    let shape = images.shape();
    if shape[3] != 3 {
        return Err(Error::format(
            &x_path,
            format!("expected 3 colour channels, shape is {shape:?}"),
        ));
    }
    if shape[0] != labels.len() {
        return Err(Error::format(
            &y_path,
            format!("{} labels for {} images", labels.len(), shape[0]),
        ));
    }
    if let Some((i, &bad)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::try_from(l).map_or(true, |l| l >= class_names.len()))
    {
        return Err(Error::format(
            &y_path,
            format!("label y[{i}] = {bad} outside 0..{}", class_names.len()),
        ));
    }
    Ok(ImagenetVal {
        images,
        labels,
        class_names,
    })
}

/// The payload of an object-dtype `.npy` file (after its header), checking
/// the header says what the lab's `label_map.npy` is: `|O`, shape `()`.
fn npy_payload<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a [u8]> {
    let bad = |what: &str| Error::format(path, what.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not an npy file (bad magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(Error::format(path, format!("unsupported npy version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated npy header"))?;
    let header = String::from_utf8_lossy(header);
    if !header.contains("'descr': '|O'") || !header.contains("'shape': ()") {
        return Err(Error::format(
            path,
            format!(
                "expected a pickled 0-d object array, header is {}",
                header.trim()
            ),
        ));
    }
    Ok(&bytes[start + header_len..])
}

/// Loads a PNG or JPEG file as the command-line tool does: converted to RGB
/// (grayscale and RGBA too), the shorter side resized to `size` (bilinear with
/// antialiasing, as torchvision's `Resize`), then centre-cropped to
/// `size x size`. Returns `[size, size, 3]`.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Format`] if it cannot be
/// decoded.
pub fn load_image_file(path: impl AsRef<Path>, size: u32) -> Result<Array3<u8>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| Error::format(path, format!("cannot decode image: {e}")))?
        .to_rgb8();
    let resized = crate::transforms::resize_shorter_side(&img, size)?;
    let (w, h) = resized.dimensions();
    let (left, top) = ((w - size) / 2, (h - size) / 2);
    let cropped = image::imageops::crop_imm(&resized, left, top, size, size).to_image();
    crate::transforms::rgb_image_to_array(&cropped)
}
