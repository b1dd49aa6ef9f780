//! Where libtorch runs: `cpu`, `cuda`, `cuda:N` or `auto`.
//!
//! A program linked against a CUDA build of libtorch may still find no GPU
//! through tch: the linker drops `libtorch_cuda.so` (nothing refers to it by
//! name, and Rust links with `--as-needed`), and without it libtorch's CUDA
//! back end is never registered, so `Device::cuda_if_available()` quietly
//! answers `Cpu`. [`cuda_available`] loads that library first, from the
//! folder of the libtorch this process already uses (and only from there),
//! the way PyTorch's own `import torch` does. Unix only; elsewhere tch's
//! link flags keep the library.

use std::sync::OnceLock;

use tch::Device;

use crate::error::{Error, Result};

/// Whether libtorch here can run on a CUDA GPU; loads libtorch's CUDA back end
/// first if the linker left it out (once per process). Where no GPU driver
/// is installed the answer is `false` without loading it (which would cost
/// about half a second and 300 MB).
#[must_use]
pub fn cuda_available() -> bool {
    gpu_driver_present() && load_cuda_backend().is_ok() && tch::Cuda::is_available()
}

/// Whether an NVIDIA driver's device files are here (Linux; WSL 2 exposes
/// `/dev/dxg` instead). Elsewhere: assume one might be.
fn gpu_driver_present() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    [
        "/dev/nvidiactl",
        "/dev/nvidia0",
        "/proc/driver/nvidia/version",
        "/dev/dxg",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

/// A CUDA GPU when one is usable, else the CPU (`--device auto`).
#[must_use]
pub fn best_device() -> Device {
    if cuda_available() {
        Device::Cuda(0)
    } else {
        Device::Cpu
    }
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto` (the best available), and checks
/// that a GPU asked for is there.
///
/// # Errors
/// [`Error::Parameter`] for another name, or for a GPU that libtorch cannot
/// use here (saying why: no CUDA build of libtorch, or no such GPU).
///
/// ```
/// use saliency_lab::device::parse_device;
/// assert_eq!(parse_device("cpu")?, tch::Device::Cpu);
/// assert!(parse_device("gpu").unwrap_err().to_string().contains("cpu, cuda, cuda:N or auto"));
/// # Ok::<(), saliency_lab::Error>(())
/// ```
pub fn parse_device(name: &str) -> Result<Device> {
    let bad = |why: String| Error::parameter("device", "device", name, why);
    let index = match name.trim() {
        "cpu" => return Ok(Device::Cpu),
        "auto" => return Ok(best_device()),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| bad("expected cpu, cuda, cuda:N or auto".into()))?,
    };
    if let Err(why) = load_cuda_backend() {
        return Err(bad(format!(
            "this libtorch has no CUDA back end ({why}); install a CUDA build of PyTorch, or use cpu"
        )));
    }
    let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    if index >= count {
        return Err(bad(format!(
            "libtorch sees {count} CUDA device(s) here; use cpu{}",
            if count > 0 { " or cuda:0" } else { "" }
        )));
    }
    Ok(Device::Cuda(index))
}

/// Loads `libtorch_cuda.so` from the folder of the `libtorch_cpu.so` this
/// process has loaded, and from nowhere else (another libtorch's CUDA library
/// would not match this one), once; later calls return the first outcome.
/// Unix only: elsewhere tch's own link flags keep the CUDA library.
#[cfg(unix)]
fn load_cuda_backend() -> std::result::Result<(), String> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            // Not `tch::Cuda::is_available()` first: libtorch answers it
            // once and keeps the answer, so asking before loading would
            // keep "no CUDA" for the rest of the process.
            let name = "libtorch_cuda.so";
            if loaded_library_dir(name).is_some() {
                return Ok(()); // linked in already
            }
            let dir = loaded_library_dir("libtorch_cpu.so").ok_or_else(|| {
                "the folder of this process's libtorch_cpu.so was not found".to_string()
            })?;
            let path = dir.join(name);
            // RTLD_GLOBAL: libtorch's CUDA kernels register themselves with
            // libtorch_cpu when the library's constructors run.
            // SAFETY: loading libtorch's own CUDA library, from the folder of
            // the libtorch already loaded; its initialisers only register its
            // back end.
            let lib = unsafe {
                libloading::os::unix::Library::open(
                    Some(&path),
                    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
                )
            };
            match lib {
                Ok(lib) => {
                    std::mem::forget(lib); // stays loaded for the process
                    Ok(())
                }
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        })
        .clone()
}

#[cfg(not(unix))]
fn load_cuda_backend() -> std::result::Result<(), String> {
    Ok(())
}

/// The folder of a shared library this process has loaded (Linux:
/// `/proc/self/maps`; elsewhere `None`).
#[cfg(unix)]
fn loaded_library_dir(file: &str) -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(std::path::Path::new)
        .find(|p| p.file_name().is_some_and(|f| f == file))
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_and_bad_ones_named() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        for bad in ["gpu", "cuda:x", "cuda:-1", ""] {
            let msg = parse_device(bad).unwrap_err().to_string();
            assert!(
                msg.contains("expected cpu, cuda, cuda:N or auto"),
                "{bad}: {msg}"
            );
        }
        // `auto` is the CPU exactly where no CUDA device is usable.
        assert_eq!(
            parse_device("auto").unwrap() == Device::Cpu,
            !cuda_available()
        );
    }

    #[test]
    fn a_missing_gpu_is_an_error_that_says_why() {
        if cuda_available() {
            let n = tch::Cuda::device_count();
            let msg = parse_device(&format!("cuda:{n}")).unwrap_err().to_string();
            assert!(msg.contains(&format!("sees {n} CUDA device")), "{msg}");
        } else {
            let msg = parse_device("cuda").unwrap_err().to_string();
            assert!(msg.contains("use cpu"), "{msg}");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn libtorch_is_found_in_this_process() {
        assert!(loaded_library_dir("libtorch_cpu.so").is_some());
    }
}
