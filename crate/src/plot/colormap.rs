//! Colour maps the lab uses, built the way matplotlib builds them (a
//! 256-entry lookup table of linear segments, indexed by `int(x * 256)`), so
//! that sampled colours equal matplotlib's and seaborn's; and the value range
//! and normalisation matplotlib's `imshow` puts in front of them.

use ndarray::ArrayView2;

/// An RGB colour with components in `0..=255`.
pub type Rgb = [u8; 3];

/// A colour map: a value in `[0, 1]` to a colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Colormap {
    /// matplotlib's `hot`: black, red, yellow, white (the lab's max-abs maps).
    Hot,
    /// matplotlib's `gray` (the lab's default `image.cmap`).
    Gray,
    /// The lab's palette, seaborn `diverging_palette(0, 359, s=100,
    /// center="dark")`: dark in the middle, saturated at the ends. Hues 0 and
    /// 359 are both crimson, so the two signs look alike: the lab's palette
    /// shows magnitude, not sign (see [`Colormap::BlueRed`]).
    LabDiverging,
    /// A diverging palette that shows the sign: seaborn
    /// `diverging_palette(240, 10, s=100, center="dark")`, blue for negative,
    /// red for positive, dark at zero.
    BlueRed,
    /// matplotlib's `bwr`: blue for negative, white at zero, red for
    /// positive (how LRP's relevance is usually drawn: zero is the page).
    Bwr,
}

const N: usize = 256;

impl Colormap {
    /// The colour of `x`, clamped to `[0, 1]` (matplotlib's lookup:
    /// `lut[min(int(x * 256), 255)]`, components truncated to `u8`).
    #[must_use]
    pub fn color(self, x: f64) -> Rgb {
        let i = if x.is_nan() {
            0
        } else {
            ((x.clamp(0.0, 1.0) * N as f64) as usize).min(N - 1)
        };
        self.lut()[i]
    }

    /// The 256-entry lookup table.
    #[must_use]
    pub fn lut(self) -> &'static [Rgb; N] {
        use std::sync::OnceLock;
        static LUTS: [OnceLock<[Rgb; N]>; 5] = [const { OnceLock::new() }; 5];
        let k = self as usize;
        LUTS[k].get_or_init(|| to_u8(&self.build()))
    }

    /// Whether the map is meant for signed data centred on zero.
    #[must_use]
    pub fn is_diverging(self) -> bool {
        matches!(
            self,
            Colormap::LabDiverging | Colormap::BlueRed | Colormap::Bwr
        )
    }

    fn build(self) -> Vec<[f64; 3]> {
        match self {
            Colormap::Hot => segments([
                &[(0.0, 0.0416), (0.365079, 1.0), (1.0, 1.0)],
                &[(0.0, 0.0), (0.365079, 0.0), (0.746032, 1.0), (1.0, 1.0)],
                &[(0.0, 0.0), (0.746032, 0.0), (1.0, 1.0)],
            ]),
            Colormap::Gray => segments([&[(0.0, 0.0), (1.0, 1.0)]; 3]),
            // matplotlib's `_bwr_data`: blue, white, red, equally spaced.
            Colormap::Bwr => segments([
                &[(0.0, 0.0), (0.5, 1.0), (1.0, 1.0)],
                &[(0.0, 0.0), (0.5, 1.0), (1.0, 0.0)],
                &[(0.0, 1.0), (0.5, 1.0), (1.0, 0.0)],
            ]),
            // husl_to_rgb of (h, 100, 50) and of the dark end (h, 15, 15),
            // as seaborn.palettes computes them.
            Colormap::LabDiverging => diverging(
                [0.917_631_344_726_005_3, 0.0, 0.393_773_095_486_556_1],
                [
                    0.186_354_831_056_781_44,
                    0.134_446_988_868_282_35,
                    0.143_818_064_335_971_3,
                ],
                [
                    0.185_950_289_710_435_56,
                    0.134_539_330_386_437_76,
                    0.144_521_868_487_955_76,
                ],
                [0.916_010_427_233_730_3, 0.0, 0.407_553_280_414_777_2],
            ),
            Colormap::BlueRed => diverging(
                [
                    1.961_638_039_305_491_2e-5,
                    0.495_366_096_608_053_6,
                    0.717_370_351_469_080_9,
                ],
                [
                    0.136_685_829_807_210_42,
                    0.149_185_954_973_908_1,
                    0.163_476_161_674_039_83,
                ],
                [
                    0.190_992_045_346_480_37,
                    0.133_368_292_960_834_55,
                    0.135_361_400_966_881_4,
                ],
                [0.934_785_807_220_174_6, 0.0, 0.170_846_012_687_033_14],
            ),
        }
    }
}

fn to_u8(lut: &[[f64; 3]]) -> [Rgb; N] {
    let mut out = [[0u8; 3]; N];
    for (o, c) in out.iter_mut().zip(lut) {
        *o = c.map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8);
    }
    out
}

/// matplotlib's `_create_lookup_table`: each channel piecewise linear through
/// `(x, y)` points, sampled at `i / 255`.
fn segments(channels: [&[(f64, f64)]; 3]) -> Vec<[f64; 3]> {
    (0..N)
        .map(|i| {
            let x = i as f64 / (N - 1) as f64;
            channels.map(|pts| interp(pts, x))
        })
        .collect()
}

fn interp(pts: &[(f64, f64)], x: f64) -> f64 {
    let j = pts
        .iter()
        .position(|&(px, _)| px >= x)
        .unwrap_or(pts.len() - 1)
        .max(1);
    let ((x0, y0), (x1, y1)) = (pts[j - 1], pts[j]);
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

/// matplotlib's `LinearSegmentedColormap.from_list(colors)` (equally spaced)
/// sampled at `n` points as seaborn's `blend_palette(colors, n)` does.
fn from_list_sampled(colors: &[[f64; 3]], n: usize) -> Vec<[f64; 3]> {
    let m = colors.len() - 1;
    let lut: Vec<[f64; 3]> = (0..N)
        .map(|i| {
            let x = i as f64 / (N - 1) as f64;
            let pts = |c: usize| -> Vec<(f64, f64)> {
                colors
                    .iter()
                    .enumerate()
                    .map(|(k, col)| (k as f64 / m as f64, col[c]))
                    .collect()
            };
            [interp(&pts(0), x), interp(&pts(1), x), interp(&pts(2), x)]
        })
        .collect();
    (0..n)
        .map(|k| {
            let x = if n == 1 {
                0.0
            } else {
                k as f64 / (n - 1) as f64
            };
            lut[((x * N as f64) as usize).min(N - 1)]
        })
        .collect()
}

/// seaborn's `diverging_palette(..., center="dark", as_cmap=True)`: 128
/// colours from the negative end to its dark grey, the centre
/// `(.133, .133, .133)`, 128 from the positive dark grey to the positive end,
/// blended into one map.
fn diverging(
    neg: [f64; 3],
    neg_dark: [f64; 3],
    pos_dark: [f64; 3],
    pos: [f64; 3],
) -> Vec<[f64; 3]> {
    let mut colors = from_list_sampled(&[neg, neg_dark], 128);
    colors.push([0.133; 3]);
    colors.extend(from_list_sampled(&[pos_dark, pos], 128));
    from_list_sampled(&colors, N)
}

/// The value range matplotlib would use for these maps: min to max, or
/// symmetric `(-m, m)` with `m = max |v|` for a diverging map (so that zero is
/// the dark centre). NaN values are skipped.
pub(crate) fn value_range<'a>(
    maps: impl Iterator<Item = ArrayView2<'a, f32>>,
    cmap: Colormap,
) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for m in maps {
        for &v in m.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if cmap.is_diverging() {
        let m = lo.abs().max(hi.abs());
        return (-m, m);
    }
    (lo, hi)
}

/// matplotlib's `Normalize`: `(v - lo) / (hi - lo)`; a flat range maps to 0.
pub(crate) fn normalise(v: f32, (lo, hi): (f32, f32)) -> f64 {
    if hi > lo {
        f64::from((v - lo) / (hi - lo))
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_runs_black_red_yellow_white() {
        // matplotlib: hot(0) = (0.0416, 0, 0), hot(1) = white.
        assert_eq!(Colormap::Hot.color(0.0), [10, 0, 0]);
        assert_eq!(Colormap::Hot.color(1.0), [255, 255, 255]);
        // hot(0.5) reads lut[int(0.5 * 256)] = lut[128], at x = 128/255 = 0.502:
        // green = (0.502 - 0.365079) / (0.746032 - 0.365079) = 0.359 -> 91.
        assert_eq!(Colormap::Hot.color(0.5)[..2], [255, 91]);
        assert_eq!(Colormap::Gray.color(0.5), [128, 128, 128]);
    }

    #[test]
    fn lab_diverging_is_dark_in_the_middle_and_crimson_at_both_ends() {
        let mid = Colormap::LabDiverging.color(0.5);
        assert!(mid.iter().all(|&c| c < 45), "{mid:?}");
        let (lo, hi) = (
            Colormap::LabDiverging.color(0.0),
            Colormap::LabDiverging.color(1.0),
        );
        assert_eq!(lo, [233, 0, 100]); // seaborn: (0.9176, 0, 0.3938)
        assert_eq!(hi, [233, 0, 103]); // seaborn: (0.9160, 0, 0.4076)
        let (b, r) = (Colormap::BlueRed.color(0.0), Colormap::BlueRed.color(1.0));
        assert!(
            b[2] > 150 && b[0] < 10 && r[0] > 200 && r[2] < 60,
            "{b:?} {r:?}"
        );
    }

    #[test]
    fn diverging_range_is_symmetric() {
        let m = ndarray::array![[-1.0f32, 3.0]];
        assert_eq!(
            value_range(std::iter::once(m.view()), Colormap::LabDiverging),
            (-3.0, 3.0)
        );
        assert_eq!(
            value_range(std::iter::once(m.view()), Colormap::Hot),
            (-1.0, 3.0)
        );
    }
}
