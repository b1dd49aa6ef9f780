//! The figures of the network-visualisation lab: fooling images beside
//! their originals, and images synthesised for classes.

use tch::Tensor;

use super::{check_count, Grid, Panel};
use crate::error::{Error, Result};
use crate::transforms::deprocess;

/// How much [`fooling_grid`] magnifies the difference (CS231n's 10x).
pub const DIFFERENCE_GAIN: f64 = 10.0;

/// CS231n's figure of fooling images, a row per image: the original (titled
/// `titles_before[i]`), the fooling image (`titles_after[i]`), their
/// difference and the difference magnified 10x (each shown as
/// `deprocess(d, should_rescale=False)`, so no change is mid-grey-blue,
/// ImageNet's mean colour). `x` and `fooled` are preprocessed `[N, 3, H, W]`.
///
/// # Errors
/// [`Error::Shape`] if the batches differ in shape or the titles are not
/// one per image.
pub fn fooling_grid(
    x: &Tensor,
    fooled: &Tensor,
    titles_before: &[String],
    titles_after: &[String],
) -> Result<Grid> {
    if x.size() != fooled.size() || x.dim() != 4 {
        return Err(Error::shape(
            "fooling_grid",
            format!("two batches of one shape {:?}", x.size()),
            format!("{:?}", fooled.size()),
        ));
    }
    let n = x.size()[0] as usize;
    check_count("fooling_grid", n, "titles before", titles_before.len())?;
    check_count("fooling_grid", n, "titles after", titles_after.len())?;
    let mut grid = Grid::new(n, 4);
    for i in 0..n {
        let (xi, fi) = (x.get(i as i64), fooled.get(i as i64));
        let diff = &fi - &xi;
        grid = grid
            .with_panel(
                i,
                0,
                Panel::image(deprocess(&xi, false)?, &titles_before[i]),
            )
            .with_panel(i, 1, Panel::image(deprocess(&fi, false)?, &titles_after[i]))
            .with_panel(i, 2, Panel::image(deprocess(&diff, false)?, "Difference"))
            .with_panel(
                i,
                3,
                Panel::image(
                    deprocess(&(diff * DIFFERENCE_GAIN), false)?,
                    "Magnified difference (10x)",
                ),
            );
    }
    Ok(grid)
}

/// Synthesised images (preprocessed `[N, 3, H, W]`) in a row, each titled,
/// as CS231n shows a class visualisation: `deprocess` without rescaling.
///
/// # Errors
/// [`Error::Shape`] if `images` is not a batch or the titles are not one per
/// image.
pub fn image_row(images: &Tensor, titles: &[String]) -> Result<Grid> {
    if images.dim() != 4 {
        return Err(Error::shape(
            "image_row",
            "a batch [N, 3, H, W]",
            format!("{:?}", images.size()),
        ));
    }
    let n = images.size()[0] as usize;
    check_count("image_row", n, "titles", titles.len())?;
    let mut grid = Grid::new(1, n);
    for (i, title) in titles.iter().enumerate() {
        grid = grid.with_panel(
            0,
            i,
            Panel::image(deprocess(&images.get(i as i64), false)?, title),
        );
    }
    Ok(grid)
}
