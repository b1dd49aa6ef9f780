"""What the notebook runner (run_notebooks.py) and the grader (grade.py,
sandbox.py) share: where set-up keeps things, a notebook cell's errors and
timing, and the copies of evcxr's warmed build folder that kernels side by
side each need. A leaf: it imports nothing of the project's.
"""
import hashlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lab_home():
    """Set-up's cache folder (scripts/env.sh's $SALIENCY_LAB_HOME)."""
    return Path(os.environ.get("SALIENCY_LAB_HOME", Path.home() / ".cache/saliency-lab"))


def grader_meta(cell):
    """A cell's nbgrader metadata ({} for a cell without, or for metadata
    that is not a mapping: a submission's JSON may hold anything)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    if not isinstance(meta, dict):
        return {}
    if not isinstance(meta.get("grade_id"), (str, type(None))):
        meta = dict(meta, grade_id=None)
    return meta


def source_of(cell):
    """A cell's source as one string ('' where it is not text)."""
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, str):
        return src
    if isinstance(src, list) and all(isinstance(s, str) for s in src):
        return "".join(src)
    return ""


def cell_seconds(cell):
    """How long an executed cell took (nbclient's record_timing), or None."""
    t = cell.get("metadata", {}).get("execution", {})
    try:
        a = datetime.fromisoformat(t["iopub.execute_input"].replace("Z", "+00:00"))
        b = datetime.fromisoformat(t["shell.execute_reply"].replace("Z", "+00:00"))
        return (b - a).total_seconds()
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def cell_timing(nb):
    """{grade_id: seconds} for an executed notebook's nbgrader cells that kept
    their timing: a solution's timing gives the grader's cell limits."""
    return {grader_meta(c)["grade_id"]: t for c in nb["cells"]
            if grader_meta(c).get("grade_id") and (t := cell_seconds(c)) is not None}


def output_error(kind, output):
    """The error text of one output, given its type and fields (an executed
    notebook's output, or a kernel's output message and its content):
    compile errors (error outputs) and anything on stderr (evcxr reports a
    panic or an `Err` from `?` there); '' for any other output."""
    if kind == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}".strip() + "\n"
    if kind == "stream" and output.get("name") == "stderr":
        return output.get("text", "")
    return ""


def cell_errors(cell):
    """The error text an executed cell produced (`output_error`)."""
    return "".join(output_error(out.get("output_type"), out) for out in cell.get("outputs", [])).strip()


def timing_file(master_path, state_dir=None):
    """Where the solution's per-cell timing is kept: one file per version of
    the solution notebook (its bytes' digest)."""
    if state_dir is None:
        state_dir = lab_home() / "grading"
    digest = hashlib.sha256(Path(master_path).read_bytes()).hexdigest()[:16]
    return Path(state_dir) / f"solution-timing-{digest}.json"


def save_timing(master_path, timing, state_dir=None):
    """Keeps the solution's timing {grade_id: seconds} for the grader's cell
    limits (run_notebooks.py saves it when it runs a solution cleanly)."""
    path = timing_file(master_path, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timing))


def warm_notebook(dep_path="../crate"):
    """The notebook that warms evcxr's build folder with the crate: its
    `:dep` (the crate at `dep_path`, from the notebooks' folder), a tensor,
    a figure."""
    code = [f':dep saliency-lab = {{ path = "{dep_path}" }}',
            "use saliency_lab::prelude::*;\nlet t = Tensor::ones([2], (Kind::Float, Device::Cpu));\n"
            "println!(\"warm {}\", t.sum(Kind::Float).double_value(&[]));",
            "plot::Grid::new(1, 1).render()?"]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": c} for c in code]}


def warm_folder():
    """evcxr's build folder that set-up warmed with the crate."""
    return Path(os.environ.get("EVCXR_TMPDIR", lab_home() / "evcxr-tmp"))


def copy_build_folder(name):
    """A copy of evcxr's warmed build folder for one more kernel (`name`),
    refreshed when set-up warmed the original again: two kernels must not
    build in one folder."""
    home = lab_home()
    src = warm_folder()
    dst = home / "grading" / f"evcxr-tmp-{name}"
    stamp = str(src.stat().st_mtime) if src.exists() else ""
    warm = home / ".warm"
    stamp += warm.read_text() if warm.exists() else ""
    if (dst / ".copied-from").exists() and (dst / ".copied-from").read_text() == stamp:
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.exists():
        shutil.copytree(src, dst, symlinks=True)
    else:
        dst.mkdir(parents=True)
    (dst / ".copied-from").write_text(stamp)
    return dst


def side_by_side(jobs):
    """For `jobs` kernels side by side: each one's evcxr build folder (the
    first uses set-up's warmed one, None; the others a copy of it) and
    libtorch threads each (their share of the cores; None for one kernel
    alone, libtorch's default). More threads than cores spin against each
    other: two kernels of two threads each on two cores made one cell ten
    times slower."""
    folders = [None] + [copy_build_folder(str(k)) for k in range(1, jobs)]
    return folders, cores_each(jobs)


def cores_each(jobs):
    """libtorch threads for each of `jobs` kernels side by side (None: one
    kernel alone keeps libtorch's default)."""
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
