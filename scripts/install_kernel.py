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
  jupyter/kernels/rust/ the kernel spec, argv -> the launcher;
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

Run by scripts/setup (which sources scripts/env.sh first).
"""
import json
import os
import re
import shlex
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


def main():
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
    spec = {
        "argv": [str(launcher), "--control_file", "{connection_file}"],
        "display_name": "Rust (saliency lab)",
        "language": "rust",
        "interrupt_mode": "message",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
    print(f"kernel 'rust' -> {launcher}")


if __name__ == "__main__":
    main()
