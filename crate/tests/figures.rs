//! Every figure of the lab, drawn from the real weights and images, saved as
//! PNG (in `target/tmp/figures/`, to look at) and checked on real pixels.

mod common;

use std::path::PathBuf;

use common::*;
use ndarray::Axis;
use saliency_lab::attribution::{self, smoothgrad, NoiseSamples, SmoothGradConfig, LAB_SIGMAS};
use saliency_lab::plot::{self, Colormap, Figure, Grid, Panel, PanelKind, Scale};
use saliency_lab::{deprocess, preprocess_batch, transforms::stack_images};

fn out(name: &str) -> PathBuf {
    let dir = std::env::var_os("SALIENCY_LAB_FIGURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("figures"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn save(fig: &Figure, name: &str) {
    fig.save_png(out(name)).unwrap();
    let back = image::open(out(name)).unwrap().to_rgb8();
    assert_eq!(back.dimensions(), (fig.width(), fig.height()));
    assert_eq!(back.as_raw().as_slice(), fig.as_rgb(), "PNG round trip");
}

fn is_dark(c: [u8; 3]) -> bool {
    c.iter().all(|&v| v < 60)
}

/// Counts panel columns along a horizontal line: runs of non-white pixels
/// at least `min` wide.
fn runs(fig: &Figure, y: u32, min: u32) -> Vec<(u32, u32)> {
    let mut out = vec![];
    let mut start = None;
    for x in 0..=fig.width() {
        let ink = x < fig.width() && fig.pixel(x, y).unwrap() != [255, 255, 255];
        match (ink, start) {
            (true, None) => start = Some(x),
            (false, Some(s)) => {
                if x - s >= min {
                    out.push((s, x));
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

#[test]
fn lab_figure_1_five_images_with_titles() {
    let d = data().head(5);
    let fig = plot::show_images(d.images.view(), &d.titles()).unwrap();
    save(&fig, "1_images.png");
    // Five 224-pixel panels in a row, at the middle of the image rows.
    let r = runs(&fig, fig.height() - 120, 200);
    assert_eq!(r.len(), 5, "{r:?}");
    assert!(r.iter().all(|(a, b)| b - a == 224));
    // The first panel shows image 0's pixels (hay), 1:1.
    let px = d.images[[0, 100, 100, 0]];
    assert_eq!(
        fig.pixel(r[0].0 + 100, fig.height() - 10 - 224 + 100)
            .unwrap()[0],
        px
    );
}

#[test]
fn lab_figures_2_image_beside_diverging_and_hot_maps() {
    let d = data();
    let model = model();
    let x = preprocess_batch(d.images.view()).unwrap();
    let g = attribution::vanilla_gradient(&model, &x, &d.labels).unwrap();
    let i = 2;
    let fig = plot::image_and_map(
        d.image(i).unwrap(),
        &attribution::max(&g).unwrap().get(i as i64),
        Colormap::LabDiverging,
        d.title(i).unwrap(),
    )
    .unwrap();
    save(&fig, "2a_max_diverging.png");
    let fig = plot::image_and_map(
        d.image(i).unwrap(),
        &attribution::max_abs(&g).unwrap().get(i as i64),
        Colormap::Hot,
        d.title(i).unwrap(),
    )
    .unwrap();
    save(&fig, "2b_maxabs_hot.png");
    // The hot map's panel holds black (the many near-zero values) and
    // bright yellow/white (the peak); the colour bar runs white to black.
    let panels = runs(&fig, fig.height() - 100, 200);
    assert_eq!(panels.len(), 2, "{panels:?}");
    let (x0, y0) = (panels[1].0, fig.height() - 10 - 224);
    let colours: Vec<[u8; 3]> = (0..224)
        .flat_map(|y| (0..224).map(move |x| (x, y)))
        .map(|(x, y)| fig.pixel(x0 + x, y0 + y).unwrap())
        .collect();
    assert!(colours.iter().any(|&c| is_dark(c)));
    assert!(colours.iter().any(|&c| c[0] == 255 && c[1] > 200));
    let bar_x = x0 + 224 + 6 + 4;
    assert_eq!(
        fig.pixel(bar_x, y0).unwrap(),
        [255, 255, 255],
        "top of the bar: the maximum, white"
    );
    assert_eq!(
        fig.pixel(bar_x, y0 + 223).unwrap(),
        [10, 0, 0],
        "bottom: hot(0)"
    );
}

#[test]
#[ignore = "needs the venv's Python with matplotlib and seaborn (scripts/test runs it)"]
fn colormaps_equal_matplotlib_and_seaborn() {
    for (cmap, file) in [
        (Colormap::Hot, "cmap_hot.npy"),
        (Colormap::Gray, "cmap_gray.npy"),
        (Colormap::Bwr, "cmap_bwr.npy"),
        (Colormap::LabDiverging, "cmap_diverging.npy"),
    ] {
        let want = reference::<f32>(file); // [256, 4] RGBA in [0, 1] at linspace(0, 1, 256)
        for (i, row) in want.axis_iter(Axis(0)).enumerate() {
            let got = cmap.color(i as f64 / 255.0);
            for c in 0..3 {
                let w = (f64::from(row[c]) * 255.0) as i32;
                assert!(
                    (i32::from(got[c]) - w).abs() <= 1,
                    "{cmap:?} at {i}: {got:?} vs {:?}",
                    row
                );
            }
        }
    }
    // The diverging palette's centre is dark and its ends are saturated.
    assert!(is_dark(Colormap::LabDiverging.color(0.5)));
    assert!(Colormap::LabDiverging.color(0.0)[0] > 200 && Colormap::BlueRed.color(0.0)[2] > 150);
}

#[test]
fn lab_figure_3_grid_of_images_over_maps_and_shared_scale() {
    let d = data().head(5);
    let model = model();
    let x = preprocess_batch(d.images.view()).unwrap();
    let maps = attribution::max_abs(&attribution::vanilla_gradient(&model, &x, &d.labels).unwrap())
        .unwrap();
    let fig = plot::saliency_grid(d.images.view(), &maps, &d.titles(), false).unwrap();
    save(&fig, "3_grid.png");
    assert_eq!(runs(&fig, 10 + 26 + 112, 200).len(), 5, "top row: 5 images");
    assert_eq!(
        runs(&fig, fig.height() - 10 - 112, 200).len(),
        5,
        "bottom row: 5 maps"
    );
    let shared = plot::saliency_grid(d.images.view(), &maps, &d.titles(), true).unwrap();
    save(&shared, "3_grid_shared_scale.png");
    assert!(shared.width() > fig.width(), "room for the one colour bar");
}

#[test]
fn lab_figure_4_histograms() {
    let d = data();
    let model = model();
    let x = preprocess_batch(d.images.view()).unwrap();
    let g = attribution::vanilla_gradient(&model, &x, &d.labels).unwrap();
    let h1 = plot::histogram(
        &attribution::max_abs(&g).unwrap(),
        1000,
        (0.0, 0.25),
        "saliency_maxabs",
    )
    .unwrap();
    save(&h1, "4a_hist_maxabs.png");
    let h2 = plot::histogram(&g, 1000, (-0.2, 0.2), "saliency (all channels)").unwrap();
    save(&h2, "4b_hist_raw.png");
    let blue = |f: &Figure| {
        (0..f.width())
            .flat_map(|x| (0..f.height()).map(move |y| (x, y)))
            .filter(|&(x, y)| f.pixel(x, y).unwrap() == [0x1f, 0x77, 0xb4])
            .count()
    };
    assert!(
        blue(&h1) > 2000 && blue(&h2) > 2000,
        "bars drawn in matplotlib's C0"
    );
    // The raw gradient's histogram is centred on zero: its tallest bar is in the middle.
    let (edges, dens) =
        plot::density(&Vec::<f32>::try_from(g.flatten(0, -1)).unwrap(), 1000).unwrap();
    let peak = dens
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert!(edges[peak] < 0.0 && edges[peak + 1] > 0.0 || edges[peak].abs() < 1e-3);
}

#[test]
fn lab_figure_5_homework_blur_average_and_smoothgrad() {
    let d = data();
    let model = model();
    let i = 2;
    let b =
        attribution::blur_average(&model, d.image(i).unwrap(), d.labels[i], &LAB_SIGMAS).unwrap();
    let fig = plot::homework_grid(
        stack_images(&b.inputs).unwrap().view(),
        &b.titles,
        &b.maps,
        &b.average,
        d.title(i).unwrap(),
    )
    .unwrap();
    save(&fig, "5a_homework_blur_average.png");
    let rows = [
        10 + 40 + 26 + 112,
        10 + 40 + 26 + 224 + 7 + 26 + 112,
        fig.height() - 10 - 112,
    ];
    assert_eq!(runs(&fig, rows[0], 200).len(), 5);
    assert_eq!(runs(&fig, rows[1], 200).len(), 5);
    assert_eq!(runs(&fig, rows[2], 200).len(), 1, "the averaged map alone");

    // SmoothGrad, same layout: 5 of the noisy inputs, their maps, the average of all 50.
    let x = preprocess_batch(d.select(&[i]).unwrap().images.view()).unwrap();
    let cfg = SmoothGradConfig::default();
    let mut noise = NoiseSamples::new(&x, 0, &cfg).unwrap();
    let noisy = noise.next_batch(5);
    let shown: Vec<_> = (0..5)
        .map(|k| deprocess(&noisy.narrow(0, k, 1), false).unwrap())
        .collect();
    let maps = attribution::max_abs(
        &attribution::vanilla_gradient(&model, &noisy, &[d.labels[i]; 5]).unwrap(),
    )
    .unwrap();
    let sg = smoothgrad(&model, &x, &[d.labels[i]], &cfg).unwrap();
    let titles: Vec<String> = (1..=5).map(|k| format!("noisy copy {k}")).collect();
    let fig = plot::homework_grid(
        stack_images(&shown).unwrap().view(),
        &titles,
        &maps,
        &attribution::max_abs(&sg.mean).unwrap().get(0),
        "Tibetan mastiff: SmoothGrad (n=50, 15% noise)",
    )
    .unwrap();
    save(&fig, "5b_homework_smoothgrad.png");
}

#[test]
fn beyond_the_lab_overlay_colorbars_and_shared_scale() {
    let d = data().head(5);
    let model = model();
    let x = preprocess_batch(d.images.view()).unwrap();
    let g = attribution::vanilla_gradient(&model, &x, &d.labels).unwrap();
    let maps = attribution::max_abs(&g).unwrap();
    let fig = plot::overlay_grid(d.images.view(), &maps, &d.titles()).unwrap();
    save(&fig, "6a_overlay.png");
    // Methods side by side on one scale: vanilla vs SmoothGrad of one image.
    let sg = smoothgrad(
        &model,
        &x.narrow(0, 2, 1),
        &d.labels[2..3],
        &SmoothGradConfig::default().with_samples(20),
    )
    .unwrap();
    let fig = Grid::new(1, 3)
        .with_panel(0, 0, Panel::image(d.image(2).unwrap(), d.title(2).unwrap()))
        .with_panel(
            0,
            1,
            Panel::map(&maps.get(2), Colormap::Hot, "vanilla").unwrap(),
        )
        .with_panel(
            0,
            2,
            Panel::map(
                &attribution::max_abs(&sg.mean).unwrap(),
                Colormap::Hot,
                "SmoothGrad",
            )
            .unwrap(),
        )
        .with_scale(Scale::Shared)
        .with_colorbar(true)
        .render()
        .unwrap();
    save(&fig, "6b_shared_scale.png");
    let signed = Grid::new(1, 2)
        .with_panel(
            0,
            0,
            Panel::map(
                &attribution::max(&g).unwrap().get(2),
                Colormap::LabDiverging,
                "lab palette",
            )
            .unwrap(),
        )
        .with_panel(
            0,
            1,
            Panel::map(
                &attribution::max(&g).unwrap().get(2),
                Colormap::BlueRed,
                "blue-red",
            )
            .unwrap(),
        )
        .with_colorbar(true)
        .render()
        .unwrap();
    save(&signed, "6c_signed_palettes.png");
}

#[test]
fn inline_output_is_a_light_png() {
    let d = data().head(5);
    let fig = plot::show_images(d.images.view(), &d.titles()).unwrap();
    let content = fig.evcxr_content().unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert_eq!(lines[0], "EVCXR_BEGIN_CONTENT image/png");
    assert_eq!(*lines.last().unwrap(), "EVCXR_END_CONTENT");
    assert_eq!(lines.len(), 3);
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(lines[1])
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(content.len() < 1_000_000, "{} bytes inline", content.len());
}

/// The methods side by side on the lab's first five images: a row per
/// image, the image then one column per method, each column on its own
/// scale with its own colour bar.
#[test]
fn methods_compared_on_five_images() {
    use saliency_lab::attribution::{
        GradCam, GuidedBackprop, GuidedGradCam, InputXGradient, IntegratedGradients, Method,
        NoiseTunnel, Occlusion, Vanilla,
    };
    let d = data().head(5);
    let x = preprocess_batch(d.images.view()).unwrap();
    let model = model();
    let methods: Vec<Box<dyn Method>> = vec![
        Box::new(Vanilla),
        Box::new(NoiseTunnel::new(
            Vanilla,
            SmoothGradConfig::default().with_samples(20),
        )),
        Box::new(InputXGradient),
        Box::new(IntegratedGradients::default().with_steps(20)),
        Box::new(GuidedBackprop),
        Box::new(GradCam::default()),
        Box::new(GuidedGradCam::default()),
        Box::new(Occlusion::default().with_window(32).with_stride(16)),
    ];
    let columns: Vec<(String, tch::Tensor)> = methods
        .iter()
        .map(|m| {
            let a = m.attribute(&model, &x, &d.labels).unwrap();
            assert!(a.warnings.is_empty(), "{}: {:?}", m.name(), a.warnings);
            (m.name(), attribution::max_abs(&a.values).unwrap())
        })
        .collect();
    let fig = plot::methods_grid(d.images.view(), &d.titles(), &columns).unwrap();
    save(&fig, "methods.png");
    // Five rows of nine 160-pixel panels: the image, then a map per method,
    // titled on the first row.
    assert_eq!(fig.grid(), Some((5, 9)));
    for p in fig.panels() {
        let kind = if p.col == 0 {
            PanelKind::Image
        } else {
            PanelKind::Map
        };
        assert_eq!((p.kind, p.size), (kind, 160), "{p:?}");
    }
    assert_eq!(fig.panel(0, 6).unwrap().title, "grad-cam");
    // Each method's column has its own colour bar beside it, from the first
    // map's top (hot's white end) to the last map's bottom (its black end).
    for c in 1..9 {
        let (first, last) = (fig.panel(0, c).unwrap(), fig.panel(4, c).unwrap());
        let bar_x = first.x + first.size + 6 + 7;
        assert_eq!(
            fig.pixel(bar_x, first.y + 1).unwrap(),
            [255, 255, 255],
            "column {c}: bar top"
        );
        assert!(
            is_dark(fig.pixel(bar_x, last.y + last.size - 2).unwrap()),
            "column {c}: bar bottom"
        );
    }
}

/// The grader's marks histogram: a bar per whole mark, labelled at whole
/// counts.
#[test]
fn the_class_reports_marks_as_bars() {
    let labels: Vec<String> = (0..=7).map(|m| m.to_string()).collect();
    let counts = [1.0, 0.0, 2.0, 0.0, 5.0, 3.0, 9.0, 12.0];
    let fig = plot::BarChart::new("marks", &labels, &counts)
        .unwrap()
        .with_axes("mark", "students")
        .render()
        .unwrap();
    save(&fig, "class_report_marks.png");
    let blue = |x: u32| {
        (0..fig.height())
            .filter(|&y| fig.pixel(x, y).unwrap() == [0x1f, 0x77, 0xb4])
            .count()
    };
    // Bar centres across the plotting area (56 px of labels, 12 of margin).
    let width = fig.width() - 56 - 24;
    let centre = |i: u32| 12 + 56 + (2 * i + 1) * width / 16;
    let heights: Vec<usize> = (0..8).map(|i| blue(centre(i))).collect();
    assert_eq!(heights[1], 0, "{heights:?}");
    assert!(heights[7] > heights[6] && heights[6] > heights[4] && heights[4] > heights[2]);
}
