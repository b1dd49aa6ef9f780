//! Set-up's download of the Rust kernel (`scripts/get_kernel.py`, set-up's
//! step 3), against a real HTTP server on 127.0.0.1 (Python's
//! `http.server`) serving evcxr's release asset as the offline mirror holds
//! it, a corrupt copy, and an asset whose binary does not run here; then
//! from the mirror itself, and from a server that is not there.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{python, repo_root};

const VERSION: &str = "0.22.0";

fn target() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("rustc");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(String::from))
        .expect("rustc -vV names its host")
}

fn asset_name() -> String {
    format!("evcxr_jupyter-v{VERSION}-{}.tar.gz", target())
}

/// The offline mirror's copy of evcxr's release asset: a missing one fails loudly.
fn mirror_asset() -> PathBuf {
    let mirror = std::env::var_os("SALIENCY_LAB_MIRROR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    let asset = mirror.join("kernel").join(asset_name());
    assert!(
        asset.is_file(),
        "the kernel asset is required: {} (set SALIENCY_LAB_MIRROR to the offline mirror)",
        asset.display()
    );
    asset
}

fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Python's HTTP server on a free port of 127.0.0.1, serving `dir`; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(python())
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python -m http.server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Server { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the HTTP server on 127.0.0.1:{port} did not start");
    }

    fn url(&self, folder: &str) -> String {
        format!("http://127.0.0.1:{}/{folder}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs get_kernel.py into `home` with the given environment; returns its
/// output and where it installs the kernel.
fn get_kernel(home: &Path, env: &[(&str, &str)]) -> (Output, PathBuf) {
    let evcxr = home.join(format!("evcxr-{VERSION}/bin/evcxr_jupyter"));
    let mut c = Command::new(python());
    c.arg(repo_root().join("scripts/get_kernel.py"))
        .env_remove("SALIENCY_LAB_MIRROR")
        .env_remove("SALIENCY_LAB_KERNEL_SHA256")
        .env_remove("SALIENCY_LAB_KERNEL_URL")
        .env("EVCXR_VERSION", VERSION)
        .env("SALIENCY_LAB_EVCXR", &evcxr);
    for (k, v) in env {
        c.env(k, v);
    }
    (c.output().expect("scripts/get_kernel.py"), evcxr)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
#[ignore = "needs the offline mirror's kernel asset and Python (scripts/test runs it)"]
fn the_kernel_is_downloaded_checked_and_run_before_it_is_trusted() {
    let asset = mirror_asset();
    let name = asset_name();
    let served = tmp("kernel-served");
    // The release asset as the mirror holds it.
    std::fs::create_dir_all(served.join("good")).unwrap();
    std::fs::copy(&asset, served.join("good").join(&name)).unwrap();
    // A corrupt copy: the same bytes with one changed.
    std::fs::create_dir_all(served.join("corrupt")).unwrap();
    let mut bytes = std::fs::read(&asset).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(served.join("corrupt").join(&name), &bytes).unwrap();
    // An asset in evcxr's layout whose binary does not run here, as a binary
    // built against a newer glibc fails.
    let folder = name.trim_end_matches(".tar.gz");
    let build = tmp("kernel-broken");
    std::fs::create_dir_all(build.join(folder)).unwrap();
    let binary = build.join(folder).join("evcxr_jupyter");
    std::fs::write(
        &binary,
        "#!/bin/sh\necho \"evcxr_jupyter: /lib/x86_64-linux-gnu/libc.so.6: version \\`GLIBC_2.39' not found\" >&2\nexit 1\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&binary)
        .status()
        .unwrap();
    std::fs::create_dir_all(served.join("broken")).unwrap();
    let broken = served.join("broken").join(&name);
    let status = Command::new("tar")
        .arg("czf")
        .arg(&broken)
        .arg("-C")
        .arg(&build)
        .arg(folder)
        .status()
        .unwrap();
    assert!(status.success());
    let server = Server::start(&served);

    // The release asset: its digest is the one pinned in scripts/kernel.sha256,
    // and it runs.
    let home = tmp("kernel-good");
    let (out, evcxr) = get_kernel(&home, &[("SALIENCY_LAB_KERNEL_URL", &server.url("good"))]);
    assert!(out.status.success(), "{}", text(&out));
    let help = Command::new(&evcxr).arg("--help").output().unwrap();
    assert!(help.status.success() && text(&help).contains("--install"));
    let source = std::fs::read_to_string(evcxr.with_file_name("source.txt")).unwrap();
    assert!(source.contains(&server.url("good")), "{source}");

    // A corrupt asset is refused for its digest, and nothing is installed.
    let home = tmp("kernel-corrupt");
    let (out, evcxr) = get_kernel(
        &home,
        &[("SALIENCY_LAB_KERNEL_URL", &server.url("corrupt"))],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("not the one expected"),
        "{}",
        text(&out)
    );
    assert!(!evcxr.exists());

    // An asset whose digest is right (an instructor's own build, named by
    // SALIENCY_LAB_KERNEL_SHA256) but whose binary does not run: refused,
    // saying why in the binary's own words.
    let home = tmp("kernel-broken-home");
    let digest = sha256(&broken);
    let (out, evcxr) = get_kernel(
        &home,
        &[
            ("SALIENCY_LAB_KERNEL_URL", &server.url("broken")),
            ("SALIENCY_LAB_KERNEL_SHA256", &digest),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("does not run here") && t.contains("GLIBC_2.39"),
        "{t}"
    );
    assert!(!evcxr.exists());

    // From the offline mirror, with no server at all.
    let dead = format!("http://127.0.0.1:{}/nothing", server.port);
    drop(server);
    let mirror = asset.parent().unwrap().parent().unwrap();
    let home = tmp("kernel-mirror");
    let (out, evcxr) = get_kernel(
        &home,
        &[
            ("SALIENCY_LAB_MIRROR", mirror.to_str().unwrap()),
            ("SALIENCY_LAB_KERNEL_URL", &dead),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(evcxr.is_file());

    // Neither a mirror nor a server: no kernel, and each source's reason.
    let home = tmp("kernel-none");
    let (out, _) = get_kernel(&home, &[("SALIENCY_LAB_KERNEL_URL", &dead)]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("could not be downloaded"),
        "{}",
        text(&out)
    );
}
