//! Text on a figure: the tick labels' format, the fonts (DejaVu Sans, built
//! in), and labels drawn with plotters after the bitmaps, shrunk and then
//! shortened to fit their width.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::Figure;
use crate::error::{Error, Result};

/// A tick label: plain decimals for ordinary magnitudes, scientific notation
/// for the tiny values gradients have.
pub(crate) fn format_tick(v: f32) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (0.01..1000.0).contains(&a) {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// Text to draw after the bitmaps.
pub(crate) struct Label {
    pub(crate) text: String,
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) size: f64,
    pub(crate) max_w: u32,
    pub(crate) centre: bool,
    pub(crate) bold: bool,
}

impl Label {
    pub(crate) fn centred(text: &str, x: u32, y: u32, size: f64, max_w: u32, bold: bool) -> Self {
        Label {
            text: text.to_string(),
            x,
            y,
            size,
            max_w,
            centre: true,
            bold,
        }
    }
}

/// Registers DejaVu Sans with plotters once (no system fonts needed).
pub(crate) fn ensure_fonts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Draws the labels, shrinking a label's font (down to 11 px, its bottom
/// kept in place) and then shortening it with "…" until it fits its width,
/// so titles are never clipped.
pub(crate) fn draw_labels(fig: &mut Figure, labels: &[Label]) -> Result<()> {
    ensure_fonts();
    let (w, h) = (fig.width, fig.height);
    let root = BitMapBackend::with_buffer(&mut fig.rgb, (w, h)).into_drawing_area();
    let plot_err = |e: &dyn std::fmt::Display| Error::Plot(e.to_string());
    for l in labels {
        let style_of = |size: f64| {
            let f = FontDesc::new(
                FontFamily::SansSerif,
                size,
                if l.bold {
                    FontStyle::Bold
                } else {
                    FontStyle::Normal
                },
            );
            let anchor = Pos::new(if l.centre { HPos::Center } else { HPos::Left }, VPos::Top);
            TextStyle::from(f).color(&BLACK).pos(anchor)
        };
        let mut size = l.size;
        let mut text = l.text.clone();
        let fits = |t: &str, s: f64| {
            root.estimate_text_size(t, &style_of(s))
                .map(|(tw, _)| tw <= l.max_w)
        };
        while !fits(&text, size).map_err(|e| plot_err(&e))? {
            if size > 11.0 {
                size -= 1.0;
            } else {
                let mut chars: Vec<char> = text.trim_end_matches('…').chars().collect();
                if chars.len() <= 1 {
                    break;
                }
                chars.pop();
                text = chars.into_iter().collect::<String>().trim_end().to_string() + "…";
            }
        }
        // A shrunk label keeps its bottom where the full-size one's was,
        // next to what it names (a panel's title just above its panel).
        let y = l.y as i32 + (l.size - size).round() as i32;
        root.draw(&Text::new(text, (l.x as i32, y), style_of(size)))
            .map_err(|e| plot_err(&e))?;
    }
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_well() {
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(0.00123), "1.2e-3");
        assert_eq!(format_tick(-12.5), "-12.5");
    }
}
