//! Where the lab's data and weights are: the files `scripts/setup` put in
//! place, or an offline mirror folder.
//!
//! Lookup order for each file:
//! 1. `$SALIENCY_LAB_MIRROR/<sub>/<file>` and `$SALIENCY_LAB_MIRROR/<file>`
//!    (a classroom mirror laid out like `shared/`: `data/`, `models/`);
//! 2. `$SALIENCY_LAB_HOME/assets/<sub>/<file>`, where set-up downloads them
//!    (`SALIENCY_LAB_HOME` defaults to `~/.cache/saliency-lab`).
//!
//! A file found nowhere is an [`Error::NotFound`] that says how to get it:
//! tests that need the files fail loudly instead of passing silently.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The lab's images: `data/imagenet_val_25.npz`.
pub const DATA_FILE: &str = "imagenet_val_25.npz";
/// SqueezeNet 1.1 weights: `models/squeezenet1_1.safetensors`.
pub const WEIGHTS_FILE: &str = "squeezenet1_1.safetensors";

/// The project's cache: `$SALIENCY_LAB_HOME`, else `~/.cache/saliency-lab`.
#[must_use]
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("SALIENCY_LAB_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    base.join(".cache").join("saliency-lab")
}

fn candidates(sub: &str, file: &str) -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(m) = std::env::var_os("SALIENCY_LAB_MIRROR").filter(|m| !m.is_empty()) {
        let m = PathBuf::from(m);
        c.push(m.join(sub).join(file));
        c.push(m.join(file));
    }
    c.push(home().join("assets").join(sub).join(file));
    c
}

fn locate(what: &'static str, sub: &str, file: &str) -> Result<PathBuf> {
    let c = candidates(sub, file);
    c.iter().find(|p| p.is_file()).cloned().ok_or_else(|| Error::NotFound {
        what,
        path: c.last().cloned().unwrap_or_default(),
        hint: format!(
            "looked in {}; run scripts/setup, or set SALIENCY_LAB_MIRROR to a folder holding {sub}/{file}",
            c.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// The path of `imagenet_val_25.npz`.
///
/// # Errors
/// [`Error::NotFound`] if it is in none of the places above.
pub fn data_path() -> Result<PathBuf> {
    locate("data file", "data", DATA_FILE)
}

/// The path of `squeezenet1_1.safetensors`.
///
/// # Errors
/// [`Error::NotFound`] if it is in none of the places above.
pub fn weights_path() -> Result<PathBuf> {
    locate("weights file", "models", WEIGHTS_FILE)
}
