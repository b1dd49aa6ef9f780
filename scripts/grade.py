#!/usr/bin/env python3
"""Grades SmoothGrad homework submissions through the real Rust (evcxr) kernel.

  scripts/grade.py SUBMISSIONS_DIR [--out grades.csv] [--feedback DIR]

SUBMISSIONS_DIR holds one notebook per student: `NAME.ipynb`, or
`NAME/homework_smoothgrad_student.ipynb` (any single notebook in a folder
named after the student). For each one, the grader

  1. rebuilds the notebook from the solution version (the single source,
     notebooks/homework_smoothgrad.ipynb): the student's answer cells (nbgrader
     `solution: true`, matched by grade_id) and any cells the student added go
     in; every other cell, the tests with their hidden parts included, comes
     from the solution version, so tests cannot be edited away; cells tagged
     `demo` are skipped;
  2. runs it in a fresh kernel, in a process group of its own, with a time
     limit per cell (a cell that does not finish is interrupted; the kernel
     loses its variables and grading goes on) and one for the whole notebook
     (the group is killed). Each cell's limit comes from the solution's own
     timing: 10 times what that cell took in the solution, at least 30 s
     (cells a student added: 10 times the solution's slowest cell); the
     solution is run once to time it, and its timing kept beside the grades
     for the next run of the same solution (--cell-timeout sets one limit
     for all cells instead);
  3. scores each test cell (nbgrader `grade: true`, `points`): full points if
     it ran without error output, else none.

Notebooks are graded side by side, one kernel per core (--jobs), each kernel
with its own copy of evcxr's warmed build folder, so that nothing the
solution's set-up compiled is compiled again. It writes one CSV line per
student (points per test, total, status), in the order of the submissions,
and a feedback text per student, and prints a line per graded notebook with
how many are left. One broken or endless notebook does not stop the others.
Needs no nbgrader; see nbgrader_config.py for nbgrader's own pipeline.
"""
import argparse
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MASTER = ROOT / "notebooks" / "homework_smoothgrad.ipynb"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def grader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def tests_of(master):
    return [(grader_meta(c)["grade_id"], grader_meta(c).get("points", 0))
            for c in master["cells"] if grader_meta(c).get("grade")]


def wrap_test(cell):
    """A test cell whose outcome is recorded by the kernel itself (see
    crate/src/grading.rs): evcxr answers a panicking cell as successful and
    may deliver its stderr late."""
    gid = grader_meta(cell)["grade_id"]
    body = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    # One statement, no top-level `let`: evcxr would try to keep the outcome
    # as a variable between cells.
    wrapped = (
        f"saliency_lab::grading::record({json.dumps(gid)}, std::panic::catch_unwind(std::panic::AssertUnwindSafe(\n"
        "    || -> saliency_lab::grading::TestResult {\n"
        f"{body}\n"
        "    Ok(())\n"
        "})));"
    )
    return dict(cell, source=wrapped)


def build(master, submission):
    """The notebook to run: the solution version's cells, with the student's
    answers and added cells in place."""
    answers, extras, last = {}, {}, None
    for cell in submission.get("cells", []):
        gid = grader_meta(cell).get("grade_id")
        if gid:
            answers[gid] = cell
            last = gid
        elif cell.get("cell_type") == "code":
            extras.setdefault(last, []).append(cell)
    cells = list(extras.get(None, []))
    for cell in master["cells"]:
        if "demo" in cell.get("metadata", {}).get("tags", []):
            continue
        meta = grader_meta(cell)
        gid = meta.get("grade_id")
        if meta.get("solution") and gid in answers:
            cell = dict(cell, source=answers[gid].get("source", ""))
        if meta.get("grade") and cell["cell_type"] == "code":
            cell = wrap_test(cell)
        cells.append(cell)
        cells.extend(extras.get(gid, []))
    nb = dict(master, cells=[dict(c, outputs=[], execution_count=None) if c["cell_type"] == "code" else c for c in cells])
    return nb


def failure_message(text):
    """The line a student should read: the assertion's message, not the
    panic's location."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("thread '", "panicked at", "stack backtrace", "note:")):
            return line[:300]
    return text.strip()[:300] or "failed"


def run_one(master_path, submission_path, result_path, limits):
    """Child process: execute one rebuilt notebook and write the outcome.
    `limits`: {"cells": {grade_id: seconds}, "other": seconds}."""
    import nbformat
    from nbclient import NotebookClient
    from run_notebooks import cell_errors, cell_seconds

    master = json.loads(Path(master_path).read_text())
    submission = json.loads(Path(submission_path).read_text())
    nb = nbformat.from_dict(build(master, submission))
    timed_out = []
    record = Path(result_path).with_suffix(".tests")
    os.environ["SALIENCY_LAB_GRADING"] = str(record)  # the kernel inherits it

    def limit_of(cell):
        if cell.source.lstrip().startswith(":dep"):
            return 900  # a cold evcxr cache builds tch here
        gid = grader_meta(cell).get("grade_id")
        return limits["cells"].get(gid, limits["other"])

    def timeout_func(cell):
        return limit_of(cell)

    client = NotebookClient(
        nb, kernel_name="rust", timeout_func=timeout_func, allow_errors=True,
        interrupt_on_timeout=True, startup_timeout=120, record_timing=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "the cell did not finish within its time limit",
                          "traceback": ["the cell did not finish within its time limit"]},
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()
    timing = {grader_meta(c)["grade_id"]: t for c in nb.cells
              if grader_meta(c).get("grade_id") and (t := cell_seconds(c)) is not None}
    recorded = {}
    if record.exists():
        for line in record.read_text().splitlines():
            gid, status, message = (line.split("\t", 2) + ["", ""])[:3]
            recorded[gid] = (status == "pass", message)
    results = {}
    for cell in nb.cells:
        meta = grader_meta(cell)
        err = cell_errors(cell) if cell.cell_type == "code" else ""
        # nbclient's timeout error, or evcxr's answer after the interrupt killed its worker
        interrupted = "did not finish within" in err or "signal: 9" in err
        cell_limit = limit_of(cell) if cell.cell_type == "code" else 0
        if interrupted:
            timed_out.append(meta.get("grade_id", "a cell"))
        if meta.get("grade"):
            gid = meta["grade_id"]
            if gid in recorded:
                passed, message = recorded[gid]
            elif interrupted:
                passed, message = False, f"interrupted: the cell did not finish within {cell_limit:.0f} s"
            else:  # it did not compile, or the kernel lost it
                passed, message = False, failure_message(err) if err else "the test did not run"
            results[gid] = {"passed": passed, "message": message}
    Path(result_path).write_text(json.dumps({"tests": results, "timed_out": timed_out, "timing": timing}))


def grade(master_path, submission, limits, total_timeout, tmpdir=None, threads=None):
    """Grades one submission in a child process; returns (status, tests, note, timing)."""
    try:
        json.loads(submission.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return "unreadable", {}, f"the notebook could not be read ({type(e).__name__}: {e})", {}
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        limits_file = Path(tmp) / "limits.json"
        limits_file.write_text(json.dumps(limits))
        cmd = [sys.executable, __file__, "--one", str(submission), "--result", str(result),
               "--master", str(master_path), "--limits", str(limits_file)]
        env = dict(os.environ)
        if tmpdir:
            env["SALIENCY_LAB_EVCXR_TMPDIR"] = str(tmpdir)  # the kernel's own build folder
        if threads:
            # Kernels side by side each get their share of the cores: libtorch's
            # OpenMP threads, more of them than cores, spin against each other
            # (measured here: the deletion homework's comparison cell, 15 s alone,
            # did not finish in 170 s with two kernels of two threads each).
            env["OMP_NUM_THREADS"] = str(threads)
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            _, stderr = proc.communicate(timeout=total_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return "timeout", {}, f"the notebook did not finish within {total_timeout} s", {}
        if not result.exists():
            last = (stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            return "error", {}, f"grading failed: {last}", {}
        out = json.loads(result.read_text())
        note = (f"cell(s) interrupted at their time limit: {', '.join(out['timed_out'])}"
                if out["timed_out"] else "")
        return ("timeout" if out["timed_out"] else "ok"), out["tests"], note, out.get("timing", {})


def lab_home():
    """Set-up's cache folder (scripts/env.sh's $SALIENCY_LAB_HOME)."""
    return Path(os.environ.get("SALIENCY_LAB_HOME", Path.home() / ".cache/saliency-lab"))


def timing_file(master_path, state_dir=None):
    """Where the solution's per-cell timing is kept: one file per version of
    the solution notebook (its bytes' digest)."""
    if state_dir is None:
        state_dir = lab_home() / "grading"
    digest = hashlib.sha256(Path(master_path).read_bytes()).hexdigest()[:16]
    return Path(state_dir) / f"solution-timing-{digest}.json"


def save_timing(master_path, timing, state_dir=None):
    """Keeps the solution's timing {grade_id: seconds} for the cells' limits
    (scripts/run_notebooks.py saves it too when it runs a solution cleanly)."""
    path = timing_file(master_path, state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timing))


def cell_limits(master_path, master, cell_timeout, total_timeout, state_dir):
    """Per-cell time limits: --cell-timeout for every cell, or 10x the
    solution's own time per cell (at least 30 s), the solution being run once
    (and its timing kept in state_dir for the same solution next time)."""
    if cell_timeout:
        return {"cells": {}, "other": cell_timeout}, None
    cache = timing_file(master_path, state_dir)
    timing = json.loads(cache.read_text()) if cache.exists() else None
    if timing is None:
        print("timing the solution once, for the cells' time limits ...", flush=True)
        status, tests, note, timing = grade(master_path, Path(master_path), {"cells": {}, "other": 600}, total_timeout)
        failed = [gid for gid, r in tests.items() if not r["passed"]]
        if status != "ok" or failed:
            sys.exit(f"the solution itself does not pass ({status}; {note}; failed: {failed}): fix it first")
        save_timing(master_path, timing, state_dir)
    limit = lambda t: max(30.0, 10.0 * t)
    cells = {gid: limit(t) for gid, t in timing.items()}
    return {"cells": cells, "other": limit(max(timing.values(), default=3.0))}, timing


def submissions_in(folder):
    subs = []
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and p.suffix == ".ipynb":
            subs.append((p.stem, p))
        elif p.is_dir():
            nbs = sorted(p.glob("*.ipynb"))
            if nbs:
                subs.append((p.name, nbs[0]))
    return subs


def feedback_text(name, tests, results, status, note):
    total = sum(pts for gid, pts in tests if results.get(gid, {}).get("passed"))
    lines = [f"SmoothGrad homework: {name}", f"Score: {total:g} / {sum(p for _, p in tests):g}", ""]
    if note:
        lines += [f"Note: {note}", ""]
    for gid, pts in tests:
        r = results.get(gid)
        if r is None:
            lines.append(f"{gid} (0/{pts:g}): not run ({status})")
        elif r["passed"]:
            lines.append(f"{gid} ({pts:g}/{pts:g}): passed")
        else:
            lines.append(f"{gid} (0/{pts:g}): failed: {r['message']}")
    return total, "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("submissions", nargs="?", type=Path)
    ap.add_argument("--master", type=Path, default=MASTER, help="the solution notebook with the hidden tests")
    ap.add_argument("--out", type=Path, default=Path("grades.csv"))
    ap.add_argument("--feedback", type=Path, default=Path("feedback"))
    ap.add_argument("--cell-timeout", type=int, help="seconds per cell for every cell (default: 10x the solution's time "
                    "for that cell, at least 30 s; the :dep cell gets 900)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per notebook")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="notebooks graded side by side (default: 2, or 1 on one core)")
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--limits", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run_one(args.master, args.one, args.result, json.loads(args.limits.read_text()))
        return
    if not args.submissions:
        ap.error("give the folder of submissions")
    master = json.loads(args.master.read_text())
    tests = tests_of(master)
    args.feedback.mkdir(parents=True, exist_ok=True)
    start = time.time()
    home = lab_home()
    limits, _ = cell_limits(args.master, master, args.cell_timeout, args.timeout, home / "grading")
    # What every submission's hidden tests compute alike (the reference
    # SmoothGrad), computed by the first notebook and read by the others
    # (saliency_lab::grading::cached), fresh for each run.
    cache = tempfile.TemporaryDirectory(prefix="grading-cache-")
    os.environ["SALIENCY_LAB_GRADING_CACHE"] = cache.name
    subs = submissions_in(args.submissions)
    # One build folder per worker: worker 0 uses set-up's warmed one, the
    # others a copy of it (two kernels must not build in the same folder).
    jobs = max(1, min(args.jobs, len(subs)))
    tmpdirs = [None] + [copy_build_folder(home, k) for k in range(1, jobs)]
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    free = list(tmpdirs)
    results = [None] * len(subs)
    done = 0

    def work(k):
        nonlocal done
        name, path = subs[k]
        tmpdir = free.pop()
        t0 = time.time()
        try:
            status, res, note, _ = grade(args.master, path, limits, args.timeout, tmpdir, threads)
        finally:
            free.append(tmpdir)
        total, text = feedback_text(name, tests, res, status, note)
        (args.feedback / f"{name}.txt").write_text(text)
        results[k] = (name, res, total, status)
        done += 1
        print(f"{name}: {total:g}/{sum(p for _, p in tests):g} ({status}, {time.time() - t0:.0f} s); "
              f"{done}/{len(subs)} graded, {len(subs) - done} left", flush=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(work, range(len(subs))))
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [gid for gid, _ in tests] + ["total", "max", "status"])
        for name, res, total, status in results:
            w.writerow([name] + [pts if res.get(gid, {}).get("passed") else 0 for gid, pts in tests]
                       + [total, sum(p for _, p in tests), status])
    print(f"graded {len(subs)} notebook(s) in {time.time() - start:.0f} s ({jobs} at a time) -> {args.out}, "
          f"feedback in {args.feedback}/")


def copy_build_folder(home, k):
    """A copy of evcxr's warmed build folder for grading worker k, refreshed when
    set-up warmed the original again."""
    src = Path(os.environ.get("EVCXR_TMPDIR", home / "evcxr-tmp"))
    dst = home / "grading" / f"evcxr-tmp-{k}"
    stamp = str(src.stat().st_mtime) if src.exists() else ""
    warm = home / ".warm"
    stamp += open(warm).read() if warm.exists() else ""
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


if __name__ == "__main__":
    main()
