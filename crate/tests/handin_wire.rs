//! The hand-in wire format from both ends: the lines the crate prints
//! (`grading::wire`, in the student's kernel) are read by the grader's
//! Python (`scripts/handin.py`: the collector's rules, then the grader's own
//! checked copy of each value), and the copies read back by the crate (the
//! grader's kernel) equal what was handed in. Also: each type's file
//! extension is the same on both sides.

mod common;

use common::{python, repo_root};
use saliency_lab::grading::wire::{outcome_line, value_line};
use saliency_lab::grading::HandIn;
use saliency_lab::plot::{Colormap, Figure, Grid, Panel};
use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};

/// Runs handin.py on `lines` as the collector and the grader do: every
/// record taken during test `t`'s own cell, the report decoded, each value
/// made canonical into `dir/t/NAME.EXT`. Prints VALUE_EXT as JSON.
fn through_python(lines: &[String], dir: &Path) -> String {
    let input = dir.join("lines.txt");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let code = r#"
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from handin import HandIns, canonical, decode_report, records_in, VALUE_EXT
text, out = Path(sys.argv[2]).read_text(), Path(sys.argv[3])
h = HandIns(["t"])
for record, why in records_in(text):
    assert record is not None, why
    h.take(record, "t", True)
values, outcome, tampering = decode_report(json.loads(json.dumps(h.report())), ["t"])["t"]
assert outcome == (True, ""), outcome
assert tampering == [], tampering
(out / "t").mkdir(exist_ok=True)
for key, data in values.items():
    name, ext = key.rsplit(".", 1)
    why = canonical(data, ext, out / "t" / key)
    assert why is None, (key, why)
print(json.dumps(VALUE_EXT))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .arg(repo_root().join("scripts"))
        .arg(&input)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python().display()));
    assert!(
        out.status.success(),
        "handin.py on the crate's lines: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn read<T: HandIn>(dir: &Path, name: &str) -> T {
    saliency_lab::grading::handed_in(dir, "t", name).unwrap()
}

#[test]
#[ignore = "needs the venv's Python with numpy and Pillow (scripts/test runs it)"]
fn what_the_crate_hands_in_the_grader_reads_back_unchanged() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("handin-wire");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tensor = Tensor::randn([2, 3, 5, 4], (Kind::Float, Device::Cpu));
    let map = Tensor::rand([8, 8], (Kind::Float, Device::Cpu));
    let figure: Figure = Grid::new(1, 2)
        .with_panel(0, 0, Panel::map(&map, Colormap::Hot, "a map").unwrap())
        .render()
        .unwrap();
    let (x, v, n, b, text) = (
        f64::NAN,
        vec![0.25f64, -1.5, f64::INFINITY],
        7usize,
        vec![true, false],
        "ünïcode\nand lines".to_string(),
    );
    let lines = vec![
        value_line("t", "tensor", &tensor).unwrap(),
        value_line("t", "x", &x).unwrap(),
        value_line("t", "v", &v).unwrap(),
        value_line("t", "n", &n).unwrap(),
        value_line("t", "b", &b).unwrap(),
        value_line("t", "text", &text).unwrap(),
        value_line("t", "fig", &figure).unwrap(),
        outcome_line("t", None),
    ];
    let exts: std::collections::HashMap<String, String> =
        serde_json::from_str(&through_python(&lines, &dir)).unwrap();
    let rust_exts = [
        ("Tensor", <Tensor as HandIn>::EXT),
        ("f64", <f64 as HandIn>::EXT),
        ("f32", <f32 as HandIn>::EXT),
        ("i64", <i64 as HandIn>::EXT),
        ("usize", <usize as HandIn>::EXT),
        ("bool", <bool as HandIn>::EXT),
        ("Vec<f64>", <Vec<f64> as HandIn>::EXT),
        ("Vec<f32>", <Vec<f32> as HandIn>::EXT),
        ("Vec<i64>", <Vec<i64> as HandIn>::EXT),
        ("Vec<bool>", <Vec<bool> as HandIn>::EXT),
        ("String", <String as HandIn>::EXT),
        ("Figure", <Figure as HandIn>::EXT),
    ];
    assert_eq!(exts.len(), rust_exts.len(), "handin.VALUE_EXT: {exts:?}");
    for (ty, ext) in rust_exts {
        assert_eq!(exts.get(ty).map(String::as_str), Some(ext), "{ty}");
    }
    assert!(read::<Tensor>(&dir, "tensor").equal(&tensor));
    assert!(read::<f64>(&dir, "x").is_nan());
    assert_eq!(read::<Vec<f64>>(&dir, "v"), v);
    assert_eq!(read::<usize>(&dir, "n"), n);
    assert_eq!(read::<Vec<bool>>(&dir, "b"), b);
    assert_eq!(read::<String>(&dir, "text"), text);
    let back: Figure = read(&dir, "fig");
    assert_eq!(back.grid(), figure.grid());
    assert_eq!(back.panels(), figure.panels());
    assert_eq!(
        (back.width(), back.height()),
        (figure.width(), figure.height())
    );
    assert!(back.as_rgb() == figure.as_rgb(), "the figure's pixels");
}
