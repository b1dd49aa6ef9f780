//! Compiles `src/model/fast/parallel.cpp`, the crate's door to libtorch's
//! public `at::parallel_for`, against the headers of the libtorch that tch
//! links (torch-sys passes its folder on as `DEP_TCH_LIBTORCH_LIB`), and
//! sets `cfg(libtorch_parallel)` where that worked. Elsewhere (no headers,
//! or an OpenMP libtorch this compiler cannot build OpenMP code for) the
//! crate runs that work on threads of its own (`src/model/fast/parallel.rs`),
//! with a warning here saying why.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const SHIM: &str = "src/model/fast/parallel.cpp";

fn main() {
    println!("cargo:rustc-check-cfg=cfg(libtorch_parallel)");
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match build() {
        Ok(()) => println!("cargo:rustc-cfg=libtorch_parallel"),
        Err(why) => println!(
            "cargo:warning=the pooling kernel runs on the crate's own threads, not libtorch's: {why}"
        ),
    }
}

fn build() -> Result<(), String> {
    let lib = env::var_os("DEP_TCH_LIBTORCH_LIB")
        .map(PathBuf::from)
        .ok_or("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB)")?;
    let include = lib
        .parent()
        .map(|root| root.join("include"))
        .filter(|i| i.join("ATen/Parallel.h").is_file())
        .ok_or_else(|| format!("no ATen/Parallel.h in {}/../include", lib.display()))?;
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .std("c++17")
        .include(&include)
        .file(SHIM)
        .cargo_warnings(false);
    if openmp(&include)? {
        // libtorch runs its operations on an OpenMP team: `at::parallel_for`
        // is a `#pragma omp parallel` in its header, so it needs the same
        // runtime, libgomp, which torch-sys links where it is GCC's (not on
        // macOS or with MSVC).
        let target = env::var("TARGET").unwrap_or_default();
        if target.contains("apple") || target.contains("msvc") {
            return Err(format!(
                "libtorch uses OpenMP, and {target} has no libgomp linked by torch-sys"
            ));
        }
        build.flag("-fopenmp");
    }
    build
        .try_compile("saliency_lab_parallel")
        .map_err(|e| format!("compiling {SHIM}: {e}"))
}

/// Whether this libtorch's intra-op threads are an OpenMP team (else its own
/// native pool), from its `ATen/Config.h`.
fn openmp(include: &Path) -> Result<bool, String> {
    let config = include.join("ATen/Config.h");
    let text = fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    Ok(text.lines().any(|l| {
        l.split_whitespace()
            .eq(["#define", "AT_PARALLEL_OPENMP", "1"])
    }))
}
