//! The lab's figures, drawn with `plotters`, shown inline in evcxr notebooks
//! (a cell whose value is a [`Figure`] displays it) and saved with
//! [`Figure::save_png`].
//!
//! | the lab's figure | function |
//! | --- | --- |
//! | a row of images titled with their classes | [`show_images`] |
//! | an image beside its map (diverging `saliency_max`, `hot` max-abs) | [`image_and_map`] |
//! | the 2 x N grid of images over their max-abs maps | [`saliency_grid`] |
//! | histograms of saliency values (1000 bins, density) | [`histogram`] |
//! | the homework's 3 x 5 figure (inputs, maps, averaged map) | [`homework_grid`] |
//! | images (rows) against attribution methods (columns), a scale per method | [`methods_grid`] |
//! | the maps as the model's layers are randomised, a row per method | [`randomisation_grid`] |
//! | curves: deletion and insertion, Spearman per layer, convergence | [`LineChart`] |
//! | fooling images beside their originals and their differences (CS231n) | [`fooling_grid`] |
//! | images synthesised for classes, in a row | [`image_row`] |
//! | counts by category (the marks in the grader's class report) | [`BarChart`] |
//!
//! Beyond the lab: colour bars in the map's units and one colour scale shared
//! by several maps ([`Grid::with_colorbar`], [`Scale::Shared`]), and maps
//! blended over their images ([`Panel::overlay`], [`overlay_grid`]).

mod bars;
mod colormap;
mod figure;
mod grid;
mod hist;
mod lines;
mod panel;
mod synthesis;
mod text;

pub use bars::BarChart;
pub use colormap::{Colormap, Rgb};
pub use figure::{Figure, PanelInfo, PanelKind};
pub use grid::{Grid, Scale};
pub use hist::{density, histogram};
pub use lines::{LineChart, Series};
pub use panel::{map_array, Panel};
pub use synthesis::{fooling_grid, image_row, DIFFERENCE_GAIN};

use ndarray::{ArrayView4, Axis};
use tch::Tensor;

use crate::error::{Error, Result};
use crate::transforms::AsImage;

fn check_count(op: &'static str, n: usize, what: &str, got: usize) -> Result<()> {
    if n != got {
        return Err(Error::shape(op, format!("{n} {what}"), got.to_string()));
    }
    Ok(())
}

fn count_maps(op: &'static str, maps: &Tensor) -> Result<usize> {
    match maps.size()[..] {
        [n, _, _] => Ok(n as usize),
        _ => Err(Error::shape(
            op,
            "maps [N, H, W]",
            format!("{:?}", maps.size()),
        )),
    }
}

/// The lab's first figure: a row of images `[N, H, W, 3]`, each titled.
///
/// # Errors
/// [`Error::Shape`] if the titles do not match the images.
pub fn show_images<S: AsRef<str>>(images: ArrayView4<'_, u8>, titles: &[S]) -> Result<Figure> {
    let n = images.shape()[0];
    check_count("show_images", n, "titles", titles.len())?;
    let mut g = Grid::new(1, n.max(1));
    for (i, img) in images.axis_iter(Axis(0)).enumerate() {
        g = g.with_panel(0, i, Panel::image(img, titles[i].as_ref()));
    }
    g.render()
}

/// The lab's image-and-map figure: the image titled with its class, and
/// beside it the map drawn with `cmap` (the lab: [`Colormap::LabDiverging`]
/// for `saliency_max`, [`Colormap::Hot`] for `saliency_maxabs`), with a colour
/// bar in the map's units.
///
/// # Errors
/// [`Error::Shape`] if `map` is not `[H, W]` or `[1, H, W]`.
pub fn image_and_map(
    image: impl AsImage,
    map: &Tensor,
    cmap: Colormap,
    title: &str,
) -> Result<Figure> {
    Grid::new(1, 2)
        .with_panel(0, 0, Panel::image(image, title))
        .with_panel(0, 1, Panel::map(map, cmap, "")?)
        .with_colorbar(true)
        .render()
}

/// The lab's 2 x N grid: N images on top (titled), their maps `[N, H, W]`
/// below in `hot`. With `shared_scale`, all maps use one colour range and a
/// single colour bar, so their intensities can be compared.
///
/// # Errors
/// [`Error::Shape`] if the counts of images, maps and titles differ.
pub fn saliency_grid<S: AsRef<str>>(
    images: ArrayView4<'_, u8>,
    maps: &Tensor,
    titles: &[S],
    shared_scale: bool,
) -> Result<Figure> {
    let n = images.shape()[0];
    check_count(
        "saliency_grid",
        n,
        "maps",
        count_maps("saliency_grid", maps)?,
    )?;
    check_count("saliency_grid", n, "titles", titles.len())?;
    let mut g = Grid::new(2, n.max(1));
    for (i, img) in images.axis_iter(Axis(0)).enumerate() {
        g = g
            .with_panel(0, i, Panel::image(img, titles[i].as_ref()))
            .with_panel(1, i, Panel::map(&maps.get(i as i64), Colormap::Hot, "")?);
    }
    if shared_scale {
        g = g.with_scale(Scale::Shared).with_colorbar(true);
    }
    g.render()
}

/// The homework's 3 x 5 figure: the inputs on the first row (titled, e.g.
/// "Original", "σ=1", ...), their maps `[5, H, W]` on the second (the first
/// titled "Saliency maps"), the averaged map alone on the third ("Averaged
/// saliency map"), and `suptitle` (the class name) over the whole figure.
/// The same layout serves SmoothGrad's noisy inputs.
///
/// # Errors
/// [`Error::Shape`] if the counts of inputs, titles and maps differ.
pub fn homework_grid<S: AsRef<str>>(
    inputs: ArrayView4<'_, u8>,
    input_titles: &[S],
    maps: &Tensor,
    average: &Tensor,
    suptitle: &str,
) -> Result<Figure> {
    let n = inputs.shape()[0];
    check_count("homework_grid", n, "titles", input_titles.len())?;
    check_count(
        "homework_grid",
        n,
        "maps",
        count_maps("homework_grid", maps)?,
    )?;
    let mut g = Grid::new(3, n.max(1)).with_suptitle(suptitle);
    for (i, img) in inputs.axis_iter(Axis(0)).enumerate() {
        let map_title = if i == 0 { "Saliency maps" } else { "" };
        g = g
            .with_panel(0, i, Panel::image(img, input_titles[i].as_ref()))
            .with_panel(
                1,
                i,
                Panel::map(&maps.get(i as i64), Colormap::Hot, map_title)?,
            );
    }
    g.with_panel(
        2,
        0,
        Panel::map(average, Colormap::Hot, "Averaged saliency map")?,
    )
    .render()
}

/// Attribution methods side by side: a row per image, the image first, then
/// one column per method with its 2-D maps `[N, H, W]` in `hot`, each column
/// on one colour scale (its own colour bar), so that within a method the
/// images compare, and across methods the patterns do. A column's colours
/// saturate at its 99.5th percentile: gradient maps are sparse, and scaled
/// to their maximum they would show a few pixels on black (Adebayo et al.
/// 2018 clip at the 99th for the same reason).
///
/// # Errors
/// [`Error::Shape`] if a method's maps or the titles do not match the
/// images.
pub fn methods_grid<S: AsRef<str>>(
    images: ArrayView4<'_, u8>,
    titles: &[S],
    methods: &[(String, Tensor)],
) -> Result<Figure> {
    let n = images.shape()[0];
    check_count("methods_grid", n, "titles", titles.len())?;
    for (_, maps) in methods {
        check_count("methods_grid", n, "maps", count_maps("methods_grid", maps)?)?;
    }
    let mut g = Grid::new(n.max(1), methods.len() + 1)
        .with_cell_size(160)
        .with_scale(Scale::PerColumn)
        .with_colorbar(true);
    let clipped: Vec<Tensor> = methods.iter().map(|(_, maps)| saturate(maps)).collect();
    for (i, img) in images.axis_iter(Axis(0)).enumerate() {
        g = g.with_panel(i, 0, Panel::image(img, titles[i].as_ref()));
        for (j, ((name, _), maps)) in methods.iter().zip(&clipped).enumerate() {
            let title = if i == 0 { name.as_str() } else { "" };
            g = g.with_panel(
                i,
                j + 1,
                Panel::map(&maps.get(i as i64), Colormap::Hot, title)?,
            );
        }
    }
    g.render()
}

/// `maps` with the values above their 99.5th percentile set to it: gradient
/// maps are sparse, and scaled to their maximum they show a few pixels on
/// black (Adebayo et al. 2018 clip at the 99th for the same reason).
fn saturate(maps: &Tensor) -> Tensor {
    let maps = maps.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float);
    let top = maps
        .flatten(0, -1)
        .quantile_scalar(0.995, None, false, "linear");
    maps.minimum(&top)
}

/// Model randomisation, seen: for image `index`, a row per method with the
/// trained model's map, then the map after each step of the randomisation
/// (titled with the layer randomised, from the top), each map on its own
/// scale (the randomised maps' magnitudes differ by orders) saturating at
/// its 99.5th percentile (with the lowest layers random, a few pixels'
/// gradients are orders above the rest, and scaled to them the map is
/// black); the image first.
///
/// # Errors
/// [`Error::Shape`] if `index` is outside the maps, or the methods were run
/// over different layers.
pub fn randomisation_grid(
    image: impl AsImage,
    title: &str,
    methods: &[(&str, &crate::evaluation::RandomisationResult)],
    index: usize,
) -> Result<Figure> {
    let image = image.as_image();
    let Some((_, first)) = methods.first() else {
        return Err(Error::shape(
            "randomisation_grid",
            "at least one method",
            "none",
        ));
    };
    let cols = first.layers.len() + 2;
    let mut g = Grid::new(methods.len(), cols).with_cell_size(120);
    for (r, (name, res)) in methods.iter().enumerate() {
        if res.layers != first.layers {
            return Err(Error::shape(
                "randomisation_grid",
                format!("the layers {:?}", first.layers),
                format!("{:?} ({name})", res.layers),
            ));
        }
        let n = res.original.size()[0] as usize;
        if index >= n {
            return Err(Error::shape(
                "randomisation_grid",
                format!("an image index below {n}"),
                index.to_string(),
            ));
        }
        g = g.with_panel(r, 0, Panel::image(image, if r == 0 { title } else { "" }));
        g = g.with_panel(
            r,
            1,
            Panel::map(
                &saturate(&res.original.get(index as i64)),
                Colormap::Hot,
                format!("{name}: trained"),
            )?,
        );
        for (k, layer) in res.layers.iter().enumerate() {
            let t = if r == 0 {
                format!("→ {layer}")
            } else {
                String::new()
            };
            g = g.with_panel(
                r,
                k + 2,
                Panel::map(&saturate(&res.maps[k].get(index as i64)), Colormap::Hot, t)?,
            );
        }
    }
    g.render()
}

/// Beyond the lab: each image with its map blended over it (`alpha` 0.6),
/// one row, titled.
///
/// # Errors
/// [`Error::Shape`] if the counts or sizes differ.
pub fn overlay_grid<S: AsRef<str>>(
    images: ArrayView4<'_, u8>,
    maps: &Tensor,
    titles: &[S],
) -> Result<Figure> {
    let n = images.shape()[0];
    check_count("overlay_grid", n, "maps", count_maps("overlay_grid", maps)?)?;
    check_count("overlay_grid", n, "titles", titles.len())?;
    let mut g = Grid::new(1, n.max(1));
    for (i, img) in images.axis_iter(Axis(0)).enumerate() {
        g = g.with_panel(
            0,
            i,
            Panel::overlay(
                img,
                &maps.get(i as i64),
                Colormap::Hot,
                0.6,
                titles[i].as_ref(),
            )?,
        );
    }
    g.render()
}
