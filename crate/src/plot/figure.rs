//! A rendered figure: an RGB bitmap that saves as PNG and shows itself inline
//! in an evcxr notebook.

use std::path::Path;

use base64::Engine;

use crate::error::{Error, Result};

/// A rendered figure, `width x height` RGB pixels.
///
/// In an evcxr notebook, a cell whose value is a `Figure` shows it inline (as
/// a PNG through evcxr's rich-output protocol); [`Figure::save_png`] writes
/// the same pixels to a file.
#[derive(Clone)]
pub struct Figure {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) rgb: Vec<u8>,
    pub(crate) panels: Vec<PanelInfo>,
    pub(crate) grid: Option<(usize, usize)>,
}

/// What a figure drew where: one entry per panel of a [`Grid`](super::Grid),
/// so that a program (a grader, say) can check a figure's structure, not only
/// its size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PanelInfo {
    /// Row in the grid, from 0 at the top.
    pub row: usize,
    /// Column, from 0 at the left.
    pub col: usize,
    /// What the panel shows.
    pub kind: PanelKind,
    /// Its title.
    pub title: String,
    /// The panel's top-left corner and side in pixels.
    pub x: u32,
    /// See `x`.
    pub y: u32,
    /// See `x`.
    pub size: u32,
}

/// What a panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PanelKind {
    /// An RGB image.
    Image,
    /// A 2-D map in a colour map.
    Map,
    /// A map blended over an image.
    Overlay,
    /// Nothing.
    Empty,
}

impl std::fmt::Debug for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Figure({}x{})", self.width, self.height)
    }
}

impl Figure {
    /// A white canvas.
    #[must_use]
    pub fn blank(width: u32, height: u32) -> Self {
        Figure {
            width,
            height,
            rgb: vec![255; (width * height * 3) as usize],
            panels: Vec::new(),
            grid: None,
        }
    }

    /// The rows and columns of the grid the figure was drawn as (`None` for
    /// a figure not drawn by a [`Grid`](super::Grid)).
    #[must_use]
    pub fn grid(&self) -> Option<(usize, usize)> {
        self.grid
    }

    /// The panels, row by row.
    #[must_use]
    pub fn panels(&self) -> &[PanelInfo] {
        &self.panels
    }

    /// The panel at row `row`, column `col`.
    #[must_use]
    pub fn panel(&self, row: usize, col: usize) -> Option<&PanelInfo> {
        self.panels.iter().find(|p| p.row == row && p.col == col)
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The colour at `(x, y)`.
    ///
    /// # Errors
    /// [`Error::Parameter`] if the point is outside the figure.
    pub fn pixel(&self, x: u32, y: u32) -> Result<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return Err(Error::parameter(
                "Figure::pixel",
                "(x, y)",
                format!("({x}, {y})"),
                format!("outside {}x{}", self.width, self.height),
            ));
        }
        let i = ((y * self.width + x) * 3) as usize;
        Ok([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
    }

    /// The raw RGB bytes, row by row.
    #[must_use]
    pub fn as_rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// The pixels as an image to draw on with `image::imageops`.
    pub(crate) fn canvas(&mut self) -> image::ImageBuffer<image::Rgb<u8>, &mut [u8]> {
        image::ImageBuffer::from_raw(self.width, self.height, self.rgb.as_mut_slice())
            .expect("a figure holds width x height RGB pixels")
    }

    /// The figure encoded as PNG.
    ///
    /// # Errors
    /// [`Error::Plot`] if encoding fails.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        use image::ImageEncoder;
        let mut out = Vec::new();
        // The strongest compression: a notebook page holds many figures.
        PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
            .write_image(
                &self.rgb,
                self.width,
                self.height,
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| Error::Plot(format!("PNG encoding: {e}")))?;
        Ok(out)
    }

    /// Writes the figure as a PNG file.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be written.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_png()?).map_err(|e| Error::io(path, e))
    }

    /// What evcxr prints to show the figure inline: a base64 PNG between
    /// `EVCXR_BEGIN_CONTENT image/png` and `EVCXR_END_CONTENT`.
    ///
    /// # Errors
    /// [`Error::Plot`] if encoding fails.
    pub fn evcxr_content(&self) -> Result<String> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.to_png()?);
        Ok(format!(
            "EVCXR_BEGIN_CONTENT image/png\n{b64}\nEVCXR_END_CONTENT"
        ))
    }

    /// Shows the figure inline in an evcxr notebook (evcxr calls this for a
    /// cell's final value).
    pub fn evcxr_display(&self) {
        match self.evcxr_content() {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("{e}"),
        }
    }
}
