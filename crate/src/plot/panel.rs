//! A panel of a [`super::Grid`]: an image, a saliency map or the one over
//! the other, and its pixels at its own resolution.

use image::{ImageBuffer, RgbImage};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use tch::Tensor;

use super::colormap::{normalise, Colormap};
use super::figure::PanelKind;
use crate::error::{Error, Result};
use crate::transforms::AsImage;

/// One cell of a [`Grid`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Panel {
    /// An RGB image `[H, W, 3]`.
    Image {
        /// The pixels.
        image: Array3<u8>,
        /// The title above it.
        title: String,
    },
    /// A 2-D map `[H, W]` drawn with a colour map.
    Map {
        /// The values.
        map: Array2<f32>,
        /// How values become colours.
        cmap: Colormap,
        /// The title above it.
        title: String,
    },
    /// An image with a map blended over it.
    Overlay {
        /// The image, `[H, W, 3]`.
        image: Array3<u8>,
        /// The map, `[H, W]`.
        map: Array2<f32>,
        /// The map's colour map.
        cmap: Colormap,
        /// The map's weight, `0..=1`.
        alpha: f32,
        /// The title above it.
        title: String,
    },
    /// Nothing.
    Empty,
}

impl Panel {
    /// An image panel.
    #[must_use]
    pub fn image(image: impl AsImage, title: impl Into<String>) -> Self {
        Panel::Image {
            image: image.as_image().to_owned(),
            title: title.into(),
        }
    }

    /// A map panel from a `[H, W]` (or `[1, H, W]`) tensor.
    ///
    /// # Errors
    /// [`Error::Shape`] for another shape.
    pub fn map(map: &Tensor, cmap: Colormap, title: impl Into<String>) -> Result<Self> {
        Ok(Panel::Map {
            map: map_array(map)?,
            cmap,
            title: title.into(),
        })
    }

    /// An image with `map` blended over it (`alpha` is the map's weight).
    ///
    /// # Errors
    /// [`Error::Shape`] if the map's size differs from the image's.
    pub fn overlay(
        image: impl AsImage,
        map: &Tensor,
        cmap: Colormap,
        alpha: f32,
        title: impl Into<String>,
    ) -> Result<Self> {
        let image = image.as_image();
        let map = map_array(map)?;
        if map.dim() != (image.shape()[0], image.shape()[1]) {
            return Err(Error::shape(
                "Panel::overlay",
                format!("a map of the image's size {:?}", &image.shape()[..2]),
                format!("{:?}", map.shape()),
            ));
        }
        Ok(Panel::Overlay {
            image: image.to_owned(),
            map,
            cmap,
            alpha: alpha.clamp(0.0, 1.0),
            title: title.into(),
        })
    }

    pub(super) fn title(&self) -> &str {
        match self {
            Panel::Image { title, .. }
            | Panel::Map { title, .. }
            | Panel::Overlay { title, .. } => title,
            Panel::Empty => "",
        }
    }

    /// Its map and colour map, where it has one.
    pub(super) fn values(&self) -> Option<(ArrayView2<'_, f32>, Colormap)> {
        match self {
            Panel::Map { map, cmap, .. } | Panel::Overlay { map, cmap, .. } => {
                Some((map.view(), *cmap))
            }
            _ => None,
        }
    }

    pub(super) fn kind(&self) -> PanelKind {
        match self {
            Panel::Image { .. } => PanelKind::Image,
            Panel::Map { .. } => PanelKind::Map,
            Panel::Overlay { .. } => PanelKind::Overlay,
            Panel::Empty => PanelKind::Empty,
        }
    }

    /// Its pixels at its own resolution: the image, the map in its colours
    /// over `range`, or the map blended over the image; `None` if empty.
    pub(super) fn pixels(&self, range: (f32, f32)) -> Option<RgbImage> {
        let coloured = |map: &Array2<f32>, cmap: Colormap| {
            let (h, w) = map.dim();
            ImageBuffer::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb(cmap.color(normalise(map[[y as usize, x as usize]], range)))
            })
        };
        match self {
            Panel::Empty => None,
            Panel::Image { image, .. } => Some(rgb_image(image.view())),
            Panel::Map { map, cmap, .. } => Some(coloured(map, *cmap)),
            Panel::Overlay {
                image,
                map,
                cmap,
                alpha,
                ..
            } => {
                let mut under = rgb_image(image.view());
                let mix = |a: u8, b: u8| {
                    (f32::from(a) * (1.0 - alpha) + f32::from(b) * alpha).round() as u8
                };
                for (u, o) in under.pixels_mut().zip(coloured(map, *cmap).pixels()) {
                    *u = image::Rgb([mix(u[0], o[0]), mix(u[1], o[1]), mix(u[2], o[2])]);
                }
                Some(under)
            }
        }
    }
}

/// A `[H, W]` map from a `[H, W]` or `[1, H, W]` tensor.
///
/// # Errors
/// [`Error::Shape`] for another shape.
pub fn map_array(t: &Tensor) -> Result<Array2<f32>> {
    let a = crate::convert::to_array_f32(t)?;
    let a = match a.ndim() {
        3 if a.shape()[0] == 1 => a.index_axis_move(ndarray::Axis(0), 0),
        _ => a,
    };
    a.into_dimensionality::<ndarray::Ix2>()
        .map_err(|_| Error::shape("map", "a 2-D map [H, W]", format!("{:?}", t.size())))
}

/// An `[H, W, 3]` (or `[H, W, 1]`, grey) array as an RGB image.
fn rgb_image(image: ArrayView3<'_, u8>) -> RgbImage {
    let grey = image.shape()[2] == 1;
    ImageBuffer::from_fn(image.shape()[1] as u32, image.shape()[0] as u32, |x, y| {
        let (y, x) = (y as usize, x as usize);
        image::Rgb(if grey {
            [image[[y, x, 0]]; 3]
        } else {
            [image[[y, x, 0]], image[[y, x, 1]], image[[y, x, 2]]]
        })
    })
}
