//! What `maps evaluate` found: `metrics.json` (written with serde) and the
//! table it prints.

use saliency_lab::evaluation::{
    defined_mean, describe, ClassSensitivityResult, RandomisationResult,
};
use saliency_lab::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};

/// The findings, as they are gathered.
pub(crate) struct Report {
    method: String,
    target: String,
    targets: Vec<i64>,
    pub(crate) aucs: Vec<(&'static str, Vec<f64>)>,
    pub(crate) randomisation: Option<RandomisationResult>,
    /// The other classes' rule (`lowest`, ...) and what the check found.
    pub(crate) class_sensitivity: Option<(String, ClassSensitivityResult)>,
}

/// `metrics.json`.
#[derive(Serialize)]
struct Json<'a> {
    method: &'a str,
    target: &'a str,
    /// The layers in the order they were randomised (model randomisation).
    #[serde(skip_serializing_if = "Option::is_none")]
    layers: Option<&'a [String]>,
    images: Vec<Map<String, Value>>,
    mean: Map<String, Value>,
}

/// Model randomisation's three measures, one value per step.
#[derive(Serialize)]
struct Randomised {
    spearman_abs: Vec<Option<f64>>,
    spearman_signed: Vec<Option<f64>>,
    ssim: Vec<Option<f64>>,
}

/// A number, or `null` where it is NaN or infinite (JSON has neither).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn finite_all(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().copied().map(finite).collect()
}

/// The mean of the finite values.
fn mean(v: &[f64]) -> f64 {
    let ok: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    ok.iter().sum::<f64>() / ok.len().max(1) as f64
}

impl Report {
    pub(crate) fn new(method: &str, target: &str, targets: &[i64]) -> Self {
        Report {
            method: method.into(),
            target: target.into(),
            targets: targets.to_vec(),
            aucs: Vec::new(),
            randomisation: None,
            class_sensitivity: None,
        }
    }

    /// `metrics.json`: the method, the target, per image its class and
    /// areas (and its randomisation measures), and their means.
    pub(crate) fn json(&self) -> Result<String> {
        let value = |v: Randomised| serde_json::to_value(v).unwrap_or(Value::Null);
        let images = (0..self.targets.len())
            .map(|i| {
                let mut fields = Map::new();
                fields.insert("index".into(), i.into());
                fields.insert("class".into(), self.targets[i].into());
                for (name, a) in &self.aucs {
                    fields.insert(format!("{name}_auc"), finite(a[i]).into());
                }
                if let Some(r) = &self.randomisation {
                    let column = |m: &[Vec<f64>]| m.iter().map(|row| finite(row[i])).collect();
                    let measures = Randomised {
                        spearman_abs: column(&r.spearman_abs),
                        spearman_signed: column(&r.spearman_signed),
                        ssim: column(&r.ssim),
                    };
                    fields.insert("randomisation".into(), value(measures));
                }
                if let Some((_, r)) = &self.class_sensitivity {
                    fields.insert("class_sensitivity".into(), sensitivity(r, i));
                }
                fields
            })
            .collect();
        let mut means = Map::new();
        for (name, a) in &self.aucs {
            means.insert(format!("{name}_auc"), finite(mean(a)).into());
        }
        if let Some(r) = &self.randomisation {
            let measures = Randomised {
                spearman_abs: finite_all(&RandomisationResult::means(&r.spearman_abs)),
                spearman_signed: finite_all(&RandomisationResult::means(&r.spearman_signed)),
                ssim: finite_all(&RandomisationResult::means(&r.ssim)),
            };
            means.insert("randomisation".into(), value(measures));
        }
        if let Some((other, r)) = &self.class_sensitivity {
            let mut m = Map::new();
            m.insert("other".into(), other.as_str().into());
            m.insert(
                "spearman_abs".into(),
                finite(defined_mean(&r.spearman_abs)).into(),
            );
            m.insert(
                "spearman_signed".into(),
                finite(defined_mean(&r.spearman_signed)).into(),
            );
            m.insert("ssim".into(), finite(defined_mean(&r.ssim)).into());
            means.insert("class_sensitivity".into(), m.into());
        }
        let json = Json {
            method: &self.method,
            target: &self.target,
            layers: self.randomisation.as_ref().map(|r| r.layers.as_slice()),
            images,
            mean: means,
        };
        let mut text = serde_json::to_string_pretty(&json)
            .map_err(|e| Error::parameter("maps evaluate", "metrics.json", "", e.to_string()))?;
        text.push('\n');
        Ok(text)
    }

    /// The summary printed at the end.
    pub(crate) fn table(&self) -> String {
        let mut t = format!(
            "{} ({} images, target: {})\n",
            self.method,
            self.targets.len(),
            self.target
        );
        for (name, a) in &self.aucs {
            let better = if *name == "deletion" {
                "lower is better"
            } else {
                "higher is better"
            };
            t.push_str(&format!("  {name} AUC: mean {:.4} ({better})\n", mean(a)));
        }
        if let Some(r) = &self.randomisation {
            use RandomisationResult as R;
            let (a, s, q) = (
                R::means(&r.spearman_abs),
                R::means(&r.spearman_signed),
                R::means(&r.ssim),
            );
            t.push_str("  randomised up to   Spearman |map|   Spearman map   SSIM\n");
            for (k, layer) in r.layers.iter().enumerate() {
                t.push_str(&format!(
                    "  {layer:<16} {:>14} {:>14} {:>6}\n",
                    describe(a[k], 3),
                    describe(s[k], 3),
                    describe(q[k], 3)
                ));
            }
        }
        if let Some((other, r)) = &self.class_sensitivity {
            t.push_str(&format!(
                "  class sensitivity (the target's map against the {other} class's; lower: the map follows the class):\n    Spearman |map| {}, Spearman map {}, SSIM {} (means)\n",
                describe(defined_mean(&r.spearman_abs), 3),
                describe(defined_mean(&r.spearman_signed), 3),
                describe(defined_mean(&r.ssim), 3)
            ));
        }
        t
    }
}

/// One image's class-sensitivity measures, with its classes.
fn sensitivity(r: &ClassSensitivityResult, i: usize) -> Value {
    let mut m = Map::new();
    m.insert("target".into(), r.targets[i].into());
    m.insert("other".into(), r.others[i].into());
    m.insert("spearman_abs".into(), finite(r.spearman_abs[i]).into());
    m.insert(
        "spearman_signed".into(),
        finite(r.spearman_signed[i]).into(),
    );
    m.insert("ssim".into(), finite(r.ssim[i]).into());
    m.into()
}
