"""Runs inside a grading sandbox (sandbox.py): one notebook through a fresh
Rust kernel, then one JSON object on stdout for the grader.

Its job comes on stdin: {"notebook": ..., "limits": {"cells": {grade_id: s},
"other": s}}; or {"warm": true} (build evcxr's folder for grading) or
{"probe": true} (is this a sandbox?). Everything here runs beside the
student's code, as the same user: what it reports is the student's output,
never a verdict. The grader reads it as data, up to a cap.
"""
import base64
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nbshared.py beside it (/grading in a sandbox)
from nbshared import cell_errors, cell_seconds  # noqa: E402

HAND_IN = Path(os.environ.get("SALIENCY_LAB_HAND_IN", "/grading/hand-in"))
HAND_IN_CAP = 48 << 20
TEXT_CAP = 4096
OUTPUT_CAP = 1 << 20  # per cell: a cell that prints more is cut
DEP_LIMIT = 900  # a `:dep` cell on a cold build folder compiles tch


def kernel_spec():
    """The Rust kernel, registered for this sandbox only."""
    data = Path(os.environ["HOME"]) / "jupyter"
    spec = data / "kernels" / "rust"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [os.environ["SALIENCY_LAB_EVCXR"], "--control_file", "{connection_file}"],
        "display_name": "Rust (grading)", "language": "rust", "interrupt_mode": "message",
        # evcxr would otherwise write a kernel spec of its own at start.
        "env": {"JUPYTER_PATH": str(Path(os.environ["HOME"]) / "no-spec")},
    }))
    os.environ["JUPYTER_DATA_DIR"] = str(data)
    os.environ["JUPYTER_RUNTIME_DIR"] = str(data / "runtime")
    os.environ["JUPYTER_CONFIG_DIR"] = str(data / "config")


def grading_client():
    """nbclient's client, with a cap on each cell's output and the hand-ins
    of each test taken as its cell ends: what code in a later cell writes to
    a test's hand-in folder is not read."""
    from nbclient import NotebookClient

    class GradingClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {})))
            used = self.output_sizes.get(cell_index, 0)
            self.output_sizes[cell_index] = used + size
            if used + size > OUTPUT_CAP:
                if used <= OUTPUT_CAP:
                    outs.append(nbformat_output("[output over the grader's limit: cut]"))
                return None
            return super().output(outs, msg, display_id, cell_index)

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            try:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            finally:
                role = cell.metadata.get("grading", {})
                if role.get("role") == "test":
                    TAKEN[role["id"]] = hand_ins_of(role["id"])

    return GradingClient


def nbformat_output(text):
    import nbformat
    return nbformat.v4.new_output("stream", name="stdout", text=text + "\n")


def execute(nb_dict, limits):
    import nbformat

    nb = nbformat.from_dict(nb_dict)
    NotebookClient = grading_client()

    def limit_of(cell):
        if cell.source.lstrip().startswith(":dep"):
            return DEP_LIMIT
        gid = cell.metadata.get("grading", {}).get("id")
        return limits.get("cells", {}).get(gid, limits.get("other", 60))

    client = NotebookClient(
        nb, kernel_name="rust", timeout_func=limit_of, allow_errors=True, interrupt_on_timeout=True,
        startup_timeout=120, record_timing=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "the cell did not finish within its time limit",
                          "traceback": ["the cell did not finish within its time limit"]},
        resources={"metadata": {"path": os.getcwd()}},
    )
    client.output_sizes = {}
    error = ""
    try:
        client.execute()
    except Exception as e:  # the kernel died, or could not start
        error = f"{type(e).__name__}: {e}".strip()[:TEXT_CAP]
    return nb, error, limit_of


def cell_report(cell, limit):
    err = cell_errors(cell)
    seconds = cell_seconds(cell)
    # nbclient's timeout error; evcxr's answer when its worker was killed: at
    # the limit, the interrupt; well before it, the sandbox (its memory).
    killed = "signal: 9" in err
    late = seconds is None or seconds >= 0.9 * limit
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return {
        **cell.get("metadata", {}).get("grading", {}),
        "ran": cell.get("execution_count") is not None or bool(cell.get("outputs")),
        "errors": err[:TEXT_CAP],
        "stdout": text[:TEXT_CAP],
        "seconds": seconds,
        "timed_out": "did not finish within" in err or (killed and late),
        "killed": killed and not late,
    }


TAKEN = {}  # test id -> its hand-ins, read as its cell ended


def hand_ins_of(test):
    """{file: base64} of a test's hand-in folder's regular files, within what
    is left of the cap (None for a file past it)."""
    out = {}
    folder = HAND_IN / test
    if folder.is_symlink() or not folder.is_dir():
        return out
    used = sum(len(v or "") for files in TAKEN.values() for v in files.values())
    for f in sorted(folder.iterdir()):
        if f.is_symlink() or not f.is_file():
            continue
        if used + f.stat().st_size * 4 // 3 > HAND_IN_CAP:
            out[f.name] = None
            continue
        out[f.name] = base64.b64encode(f.read_bytes()).decode()
        used += len(out[f.name])
    return out


def copy_cache():
    """evcxr's build folder, warmed for grading, copied into this sandbox's
    memory: the student's builds write there and are gone afterwards."""
    src = Path(os.environ.get("SALIENCY_LAB_GRADING_CACHE", "/grading/cache"))
    dst = Path(os.environ["EVCXR_TMPDIR"])
    if src.is_dir() and not dst.exists():
        shutil.copytree(src, dst, symlinks=True)


def main():
    result = os.fdopen(os.dup(1), "w")  # the grader's channel; the kernel's stdout goes nowhere
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    job = json.loads(sys.stdin.read() or "{}")
    if job.get("probe"):
        result.write(json.dumps({"sandboxed": True, "uid": os.getuid(),
                                 "interfaces": [n for _, n in socket.if_nameindex()]}))
        return
    kernel_spec()
    t0 = time.time()
    if job.get("warm"):
        nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": ':dep saliency-lab = { path = "../crate" }'},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": "use saliency_lab::prelude::*;\nlet t = Tensor::ones([2], (Kind::Float, Device::Cpu));\n"
                       "println!(\"warm {}\", t.sum(Kind::Float).double_value(&[]));"},
            {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
             "source": "plot::Grid::new(1, 1).render()?"},
        ]}
        done, error, _ = execute(nb, {"other": 600})
        errors = [cell_errors(c) for c in done.cells if cell_errors(c)]
        result.write(json.dumps({"error": error or "; ".join(errors)[:TEXT_CAP], "seconds": time.time() - t0}))
        return
    copy_cache()
    copied = time.time() - t0
    done, error, limit_of = execute(job["notebook"], job.get("limits", {}))
    result.write(json.dumps({
        "cells": [cell_report(c, limit_of(c)) for c in done.cells],
        "error": error,
        "hand_in": TAKEN,
        "seconds": {"copy": copied, "total": time.time() - t0},
    }))


if __name__ == "__main__":
    main()
