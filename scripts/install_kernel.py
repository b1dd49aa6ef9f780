#!/usr/bin/env python3
"""Registers the Rust (evcxr) kernel for the lab's Jupyter.

Writes, under $SALIENCY_LAB_HOME:
  kernel/launch         a launcher that sets libtorch's environment, then execs
                        evcxr_jupyter (evcxr may rewrite its own kernel.json and
                        drop an `env` there, so the environment lives here);
                        the kernel's own stdout, where evcxr says at every start
                        which configuration file it read ("No configuration
                        file found, use the default configuration"), goes to
                        kernel/kernel.log instead of the notebook runner's
                        output (cells' output goes through Jupyter's channels,
                        not stdout); $SALIENCY_LAB_EVCXR_TMPDIR, where set,
                        gives a kernel a build folder of its own (the grader's
                        parallel workers);
  jupyter/kernels/rust/ the kernel spec, argv -> the launcher: the lab's own
                        Jupyter (scripts/lab) finds it there;
  .cargo/config.toml    cargo's settings for every evcxr build folder below
                        $SALIENCY_LAB_HOME (the kernel's and the grader's
                        copies): the cells' own code (evcxr's crate `ctx`)
                        compiles at opt-level 0, the crate and its other
                        dependencies stay at evcxr's opt-level 2. A cell's
                        computation runs in the crate and libtorch, so
                        optimising the cell's few lines only costs compile time:
                        measured here, 6 homework submissions graded in 121 s
                        against 188 s with evcxr's default (LLVM's optimiser was
                        over half of a grading kernel's time); tch's bindings
                        (thin calls into libtorch) at opt-level 1: set-up's
                        warm step 291 s -> 253 s, the lab's computations as
                        fast (vanilla gradient of 25 images 0.63-0.72 s against
                        0.64-0.65 s, two runs each). Cargo reads the
                        file because evcxr builds in a folder below it (evcxr
                        rewrites its own .cargo/config.toml at every start).

And, so that a Jupyter of the student's own lists the kernel too, the same
spec in the user's Jupyter data folder (what `jupyter kernelspec install
--user` writes: ~/.local/share/jupyter/kernels/ on Linux), named for this
clone and cache (`saliency-lab-<digest>`, "Rust (saliency lab: CLONE, cache
CACHE)"); specs of this kind whose launcher or clone is gone (a deleted
cache or clone) are removed there.

  install_kernel.py           register (run by scripts/setup, which sources scripts/env.sh first)
  install_kernel.py --print   where the kernel is registered (scripts/lab --print-kernel)
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

CARGO_CONFIG = """\
# Written by scripts/install_kernel.py: the notebook cells' own code (evcxr's
# crate `ctx`) compiles unoptimised, tch's bindings at opt-level 1; the crate
# and its other dependencies keep evcxr's opt-level. See install_kernel.py.
[profile.dev.package.ctx]
opt-level = 0
[profile.dev.package.tch]
opt-level = 1
[profile.dev.package.torch-sys]
opt-level = 1
"""

KEEP = [
    "LD_LIBRARY_PATH", "PATH", "SALIENCY_LAB_MIRROR",
]


DISPLAY_NAME = "Rust (saliency lab)"
USER_PREFIX = "saliency-lab-"


def user_data_dir():
    """The user's own Jupyter data folder, as a Jupyter outside set-up's
    environment sees it (set-up's env.sh points JUPYTER_DATA_DIR at its
    cache)."""
    from jupyter_core.paths import jupyter_data_dir
    saved = os.environ.pop("JUPYTER_DATA_DIR", None)
    try:
        return Path(jupyter_data_dir())
    finally:
        if saved is not None:
            os.environ["JUPYTER_DATA_DIR"] = saved


def user_kernel_name(root, home):
    digest = hashlib.sha256(f"{Path(root).resolve()}\0{Path(home).resolve()}".encode()).hexdigest()[:8]
    return USER_PREFIX + digest


def short(path):
    p, user = str(path), str(Path.home())
    return "~" + p[len(user):] if p == user or p.startswith(user + os.sep) else p


def spec_for(launcher, display_name, **metadata):
    return {
        "argv": [str(launcher), "--control_file", "{connection_file}"],
        "display_name": display_name,
        "language": "rust",
        "interrupt_mode": "message",
        **({"metadata": {"saliency_lab": metadata}} if metadata else {}),
    }


def register_for_user(root, home, launcher):
    """The spec in the user's Jupyter data folder; stale ones of ours out."""
    kernels = user_data_dir() / "kernels"
    name = user_kernel_name(root, home)
    for old in kernels.glob(USER_PREFIX + "*"):
        try:
            spec = json.loads((old / "kernel.json").read_text())
            used = [spec["argv"][0], spec.get("metadata", {}).get("saliency_lab", {}).get("clone", "/")]
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue
        if old.name != name and not all(Path(p).exists() for p in used):  # its cache or its clone is gone
            shutil.rmtree(old, ignore_errors=True)
    spec_dir = kernels / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = spec_for(launcher, f"{DISPLAY_NAME[:-1]}: {short(root)}, cache {short(home)})",
                    clone=str(root), cache=str(home))
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
    return name, spec_dir


def where():
    """What `scripts/lab --print-kernel` prints."""
    home = Path(os.environ["SALIENCY_LAB_HOME"])
    root = Path(os.environ["SALIENCY_LAB_ROOT"])
    lab = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "rust"
    user = user_data_dir() / "kernels" / user_kernel_name(root, home)
    found = False
    for what, spec_dir in (("the lab's own Jupyter (scripts/lab)", lab), ("your own Jupyter", user)):
        spec = spec_dir / "kernel.json"
        if spec.exists():
            found = True
            s = json.loads(spec.read_text())
            print(f"{what}: kernel '{spec_dir.name}', \"{s['display_name']}\"\n    {spec}\n    runs {s['argv'][0]}")
        else:
            print(f"{what}: not registered ({spec} is missing: run scripts/setup)")
    return 0 if found else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--print", action="store_true", help="say where the kernel is registered")
    if ap.parse_args().print:
        sys.exit(where())
    home = Path(os.environ["SALIENCY_LAB_HOME"])
    evcxr = os.environ["SALIENCY_LAB_EVCXR"]
    if not os.access(evcxr, os.X_OK):
        sys.exit(f"{evcxr} is missing: run scripts/setup")
    launcher = home / "kernel" / "launch"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#!/usr/bin/env bash", "# Written by scripts/install_kernel.py: the Rust kernel with libtorch's environment."]
    for k in KEEP:
        if os.environ.get(k):
            lines.append(f"export {k}={shlex.quote(os.environ[k])}")
    # evcxr's cell libraries link libstd dynamically; their relative RUNPATH
    # misses the toolchain when the build folder is deep under $HOME (it is
    # computed from target/*/deps, one level below where evcxr loads them).
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
    host = re.search(r"^host: (.+)$", subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout, re.M).group(1)
    std_dir = f"{sysroot}/lib/rustlib/{host}/lib"
    lines.append(f"export LD_LIBRARY_PATH={shlex.quote(std_dir)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}")
    lines += [
        "# Cells build in evcxr's own folder (warmed by set-up), not the workspace's.",
        f"export EVCXR_TMPDIR=${{SALIENCY_LAB_EVCXR_TMPDIR:-{shlex.quote(os.environ['EVCXR_TMPDIR'])}}}",
        "unset CARGO_TARGET_DIR",
        "# A failed assertion in a cell shows its message, not a backtrace.",
        "export RUST_BACKTRACE=0",
        "# Keep evcxr from rewriting a kernel spec of its own on start.",
        f"export JUPYTER_PATH={shlex.quote(str(home / 'evcxr-no-spec'))}",
        "# evcxr's own stdout (not the cells'): to a log.",
        f"exec {shlex.quote(evcxr)} \"$@\" >>{shlex.quote(str(home / 'kernel' / 'kernel.log'))}",
    ]
    launcher.write_text("\n".join(lines) + "\n")
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmpdir = Path(os.environ["EVCXR_TMPDIR"])
    tmpdir.mkdir(parents=True, exist_ok=True)
    config = home / ".cargo" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CARGO_CONFIG)
    if home.resolve() not in tmpdir.resolve().parents:
        print(f"note: EVCXR_TMPDIR={tmpdir} is not below {home}: its cells compile at evcxr's opt-level 2")

    spec_dir = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "rust"
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(spec_for(launcher, DISPLAY_NAME), indent=2) + "\n")
    print(f"kernel 'rust' -> {launcher}")
    name, user_dir = register_for_user(os.environ["SALIENCY_LAB_ROOT"], home, launcher)
    print(f"kernel '{name}' for your own Jupyter -> {user_dir}")


if __name__ == "__main__":
    main()
