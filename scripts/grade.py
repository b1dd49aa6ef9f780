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
  2. runs it in a clean kernel: each worker keeps one kernel and starts each
     notebook with evcxr's `:clear` (a new process for the cells' code, no
     variable or item of the previous notebook left; the compiled crate and
     rust-analyzer's index stay loaded), and a notebook that uses evcxr
     commands (`:opt`, `:env`, ...: settings `:clear` keeps) gets a new kernel
     of its own. A time limit per cell (a cell that does not finish is
     interrupted; the kernel loses its variables and grading goes on) and one
     for the whole notebook (the kernel is killed; the next notebook gets a
     new one). Each cell's limit comes from the solution's own
     timing: 10 times what that cell took in the solution, at least 30 s
     (cells a student added: 10 times the solution's slowest cell); the
     solution is run once to time it, and its timing kept beside the grades
     for the next run of the same solution (--cell-timeout sets one limit
     for all cells instead);
  3. scores each test cell (nbgrader `grade: true`, `points`): full points if
     it ran without error output, else none.

Notebooks are graded side by side, one worker per core (--jobs), each
worker's kernel with its own copy of evcxr's warmed build folder, so that
nothing the solution's set-up compiled is compiled again. It writes one CSV line per
student (points per test, total, status), in the order of the submissions,
and a feedback text per student, and prints a line per graded notebook with
how many are left. One broken or endless notebook does not stop the others.
Needs no nbgrader; see nbgrader_config.py for nbgrader's own pipeline.
"""
import argparse
import asyncio
import csv
import hashlib
import json
import os
import select
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


def kernel_commands(master, submission):
    """The evcxr commands (`:opt`, `:dep`, `:env`, ...) in the code the grader
    takes from the student (answer cells and added cells): they change the
    kernel's settings, which outlive `:clear`."""
    answers = {grader_meta(c).get("grade_id") for c in master["cells"] if grader_meta(c).get("solution")}
    found = []
    for cell in submission.get("cells", []):
        gid = grader_meta(cell).get("grade_id")
        if cell.get("cell_type") != "code" or (gid is not None and gid not in answers):
            continue
        src = cell.get("source", "")
        src = src if isinstance(src, str) else "".join(src)
        found += [line.strip().split()[0] for line in src.splitlines() if line.strip().startswith(":")]
    return found


def worker_main(master_path, limits, reply_fd):
    """Child process: grades the notebooks it is sent (one JSON line each on
    stdin: submission, result, timeout), one after another, in one kernel.

    Each notebook starts with evcxr's `:clear`: a new process for the cells'
    code (no variable, item, static, thread or environment change of the
    previous notebook survives) and no `:dep`, so the set-up cell's `:dep`
    runs again, on the build folder and rust-analyzer already loaded (measured
    here: a kernel's start and first `:dep` and cell take 21 s; after `:clear`,
    2.3 s). A notebook gets a new kernel when it uses evcxr commands (they
    change settings `:clear` keeps), after one that did, and after a kernel
    died or was killed at the notebook's time limit."""
    with tempfile.TemporaryDirectory(prefix="grading-record-") as tmp:
        asyncio.run(worker_loop(master_path, limits, reply_fd, Path(tmp) / "record.tests"))


async def worker_loop(master_path, limits, reply_fd, record):
    import nbformat
    from nbclient import NotebookClient
    from run_notebooks import cell_errors, cell_timing

    master = json.loads(Path(master_path).read_text())
    reply = os.fdopen(reply_fd, "w")
    os.environ["SALIENCY_LAB_GRADING"] = str(record)  # the kernel inherits it
    loop = asyncio.get_running_loop()
    # nbclient's own kind of kernel manager (asynchronous: its interrupts at a
    # cell's limit go through this loop), kept from one notebook to the next.
    km, fresh_next = None, True

    def say(**msg):
        reply.write(json.dumps(msg) + "\n")
        reply.flush()

    async def stop_kernel():
        nonlocal km
        if km is not None:
            try:
                await km.shutdown_kernel(now=True)
            except Exception:  # already dead
                pass
            km = None

    def limit_of(cell):
        if cell.source.lstrip().startswith(":dep"):
            return 900  # a cold evcxr cache builds tch here
        gid = grader_meta(cell).get("grade_id")
        return limits["cells"].get(gid, limits["other"])

    while line := await loop.run_in_executor(None, sys.stdin.readline):
        job = json.loads(line)
        submission = json.loads(Path(job["submission"]).read_text())
        commands = kernel_commands(master, submission)
        nb = nbformat.from_dict(build(master, submission))
        client = NotebookClient(
            nb, km=km, kernel_name="rust", timeout_func=limit_of, allow_errors=True,
            interrupt_on_timeout=True, startup_timeout=120, record_timing=True,
            error_on_timeout={"ename": "CellTimeoutError", "evalue": "the cell did not finish within its time limit",
                              "traceback": ["the cell did not finish within its time limit"]},
            resources={"metadata": {"path": str(ROOT / "notebooks")}},
        )
        if km is None or fresh_next or commands or not await km.is_alive():
            await stop_kernel()
            km = client.km = client.create_kernel_manager()
            client.owns_km = False
            await km.start_kernel(cwd=str(ROOT / "notebooks"))
            say(kernel=km.provisioner.pid)
        fresh_next = bool(commands)
        killed, error = False, ""

        async def run():
            kc = client.kc = km.client()
            kc.start_channels()
            try:
                await kc.wait_for_ready(timeout=120)
                await kc.execute_interactive(":clear", timeout=60, output_hook=lambda msg: None)
                record.write_text("")
                await client.async_execute()
            finally:
                kc.stop_channels()

        try:
            await asyncio.wait_for(run(), job["timeout"])
        except asyncio.TimeoutError:  # the notebook's time limit
            killed = True
        except Exception as e:  # the kernel died
            error = f"{type(e).__name__}: {e}".strip()
        if killed or error or not await km.is_alive():
            await stop_kernel()
        timed_out = []
        timing = cell_timing(nb)
        recorded = {}
        if record.exists():
            for rec in record.read_text().splitlines():
                gid, status, message = (rec.split("\t", 2) + ["", ""])[:3]
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
                elif killed:
                    passed, message = False, f"not run: the notebook did not finish within {job['timeout']} s"
                else:  # it did not compile, or the kernel lost it
                    passed, message = False, failure_message(err) if err else "the test did not run"
                results[gid] = {"passed": passed, "message": message}
        Path(job["result"]).write_text(json.dumps({
            "tests": results, "timed_out": timed_out, "timing": timing, "killed": killed, "error": error,
        }))
        say(done=job["result"])
    await stop_kernel()


class Worker:
    """A grading worker (worker_main) in a process group of its own, with its
    kernel's build folder and share of the cores. If it does not answer within
    a notebook's limit and a minute, it and its kernel are killed, and the
    next notebook starts a new one."""

    def __init__(self, master_path, limits, tmpdir=None, threads=None):
        self.master_path, self.limits, self.tmpdir, self.threads = master_path, limits, tmpdir, threads
        self.proc = self.dir = None

    def start(self):
        if self.dir:
            self.dir.cleanup()
        self.dir = tempfile.TemporaryDirectory(prefix="grading-worker-")
        limits_file = Path(self.dir.name) / "limits.json"
        limits_file.write_text(json.dumps(self.limits))
        self.log = Path(self.dir.name) / "worker.log"
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        if self.tmpdir:
            env["SALIENCY_LAB_EVCXR_TMPDIR"] = str(self.tmpdir)  # the kernel's own build folder
        if self.threads:
            # Kernels side by side each get their share of the cores: libtorch's
            # OpenMP threads, more of them than cores, spin against each other
            # (measured here: the deletion homework's comparison cell, 15 s alone,
            # did not finish in 170 s with two kernels of two threads each).
            env["OMP_NUM_THREADS"] = str(self.threads)
        cmd = [sys.executable, __file__, "--worker", str(write_fd), "--master", str(self.master_path),
               "--limits", str(limits_file)]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log, env=env, text=True,
                                         start_new_session=True, pass_fds=(write_fd,))
        os.close(write_fd)
        self.replies, self.pending = read_fd, b""
        self.kernel_pid = None

    def kill(self):
        for pid in (self.kernel_pid, self.proc.pid if self.proc else None):
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.proc:
            self.proc.wait()
            os.close(self.replies)
        self.proc = None

    def close(self):
        if self.proc:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
        if self.dir:
            self.dir.cleanup()
            self.dir = None

    def reply(self, deadline):
        """The worker's next line; "" if it died, None if none came by the deadline."""
        while b"\n" not in self.pending:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                return None
            chunk = os.read(self.replies, 4096)
            if not chunk:
                return ""
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode()

    def grade(self, submission, total_timeout):
        """Grades one submission; returns (status, tests, note, timing)."""
        try:
            json.loads(submission.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            return "unreadable", {}, f"the notebook could not be read ({type(e).__name__}: {e})", {}
        if self.proc is not None and self.proc.poll() is not None:  # it died between notebooks
            self.kill()
        if self.proc is None:
            self.start()
        result = Path(self.dir.name) / "result.json"
        result.unlink(missing_ok=True)
        try:
            self.proc.stdin.write(json.dumps({"submission": str(submission.resolve()), "result": str(result),
                                              "timeout": total_timeout}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.kill()
            return "error", {}, "grading failed: the grading worker stopped (the next notebook gets a new one)", {}
        deadline = time.time() + total_timeout + 60
        while True:
            line = self.reply(deadline)
            if line is None:  # hung past the notebook's limit
                self.kill()
                return "timeout", {}, f"the notebook did not finish within {total_timeout} s", {}
            if not line:  # the worker died
                self.kill()
                last = (self.log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
                return "error", {}, f"grading failed: {last}", {}
            msg = json.loads(line)
            if "kernel" in msg:
                self.kernel_pid = msg["kernel"]
            elif "done" in msg:
                break
        out = json.loads(result.read_text())
        if out["killed"]:
            return "timeout", out["tests"], f"the notebook did not finish within {total_timeout} s", out["timing"]
        if out["error"]:
            return "error", out["tests"], f"grading stopped: {out['error'][:300]}", out["timing"]
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


def cell_limits(master_path, master, cell_timeout, total_timeout, state_dir, threads=None):
    """Per-cell time limits: --cell-timeout for every cell, or 10x the
    solution's own time per cell (at least 30 s), the solution being run once
    (and its timing kept in state_dir for the same solution next time)."""
    if cell_timeout:
        return {"cells": {}, "other": cell_timeout}, None
    cache = timing_file(master_path, state_dir)
    timing = json.loads(cache.read_text()) if cache.exists() else None
    if timing is None:
        print("timing the solution once, for the cells' time limits ...", flush=True)
        # Alone, with a grading worker's share of the cores.
        worker = Worker(master_path, {"cells": {}, "other": 600}, threads=threads)
        try:
            status, tests, note, timing = worker.grade(Path(master_path), total_timeout)
        finally:
            worker.close()
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
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--limits", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker_main(args.master, json.loads(args.limits.read_text()), args.worker)
        return
    if not args.submissions:
        ap.error("give the folder of submissions")
    master = json.loads(args.master.read_text())
    tests = tests_of(master)
    args.feedback.mkdir(parents=True, exist_ok=True)
    start = time.time()
    home = lab_home()
    subs = submissions_in(args.submissions)
    jobs = max(1, min(args.jobs, len(subs)))
    tmpdirs, threads = side_by_side(jobs)
    # What every submission's hidden tests compute alike (the reference
    # SmoothGrad), computed by the first notebook (or the solution's timing
    # run) and read by the others (saliency_lab::grading::cached), fresh for
    # each run.
    cache = tempfile.TemporaryDirectory(prefix="grading-cache-")
    os.environ["SALIENCY_LAB_GRADING_CACHE"] = cache.name
    limits, _ = cell_limits(args.master, master, args.cell_timeout, args.timeout, home / "grading", threads)
    free = [Worker(args.master, limits, tmpdir, threads) for tmpdir in tmpdirs]
    workers = list(free)
    results = [None] * len(subs)
    done = 0

    def work(k):
        nonlocal done
        name, path = subs[k]
        worker = free.pop()
        t0 = time.time()
        try:
            status, res, note, _ = worker.grade(path, args.timeout)
        finally:
            free.append(worker)
        total, text = feedback_text(name, tests, res, status, note)
        (args.feedback / f"{name}.txt").write_text(text)
        results[k] = (name, res, total, status)
        done += 1
        print(f"{name}: {total:g}/{sum(p for _, p in tests):g} ({status}, {time.time() - t0:.0f} s); "
              f"{done}/{len(subs)} graded, {len(subs) - done} left", flush=True)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        list(pool.map(work, range(len(subs))))
    except BaseException:  # interrupted (Ctrl-C): nothing more is graded, no kernel outlives the grader
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.kill()
        raise
    pool.shutdown()
    for worker in workers:
        worker.close()
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [gid for gid, _ in tests] + ["total", "max", "status"])
        for name, res, total, status in results:
            w.writerow([name] + [pts if res.get(gid, {}).get("passed") else 0 for gid, pts in tests]
                       + [total, sum(p for _, p in tests), status])
    print(f"graded {len(subs)} notebook(s) in {time.time() - start:.0f} s ({jobs} at a time) -> {args.out}, "
          f"feedback in {args.feedback}/")


def side_by_side(jobs):
    """For `jobs` kernels side by side: each one's evcxr build folder (the
    first uses set-up's warmed one, None; the others a copy of it: two kernels
    must not build in one folder) and libtorch threads each (their share of
    the cores; None for one kernel alone, libtorch's default)."""
    home = lab_home()
    tmpdirs = [None] + [copy_build_folder(home, k) for k in range(1, jobs)]
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    return tmpdirs, threads


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
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: the notebooks graded so far have their feedback; no grades file was written")
