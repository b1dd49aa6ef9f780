#!/usr/bin/env python3
"""Grades homework submissions through the real Rust (evcxr) kernel, each in a
sandbox of its own, with verdicts decided outside it.

  scripts/grade.py SUBMISSIONS_DIR [--master SOLUTION.ipynb] [--out grades.csv] [--feedback DIR]

SUBMISSIONS_DIR holds one notebook per student: `NAME.ipynb`, or `NAME/*.ipynb`
(the one notebook in a folder named after the student). The solution notebook
(default notebooks/homework_smoothgrad.ipynb) is the single source: its
answer cells, its tests with their hidden parts, and what the crate withholds
while grading it (homework.py). For each submission the grader

  1. draws the seed of the hidden tests' inputs for this submission (--seed
     to draw them again), and builds the notebook to run (homework.py): the
     solution's set-up cells, the student's answer cells (by grade_id) and
     added cells, and the first part of each test, which runs the student's
     functions on the test's inputs and hands the values in (`hand_in!`). No
     check, no solution and no other cell of the solution notebook goes in;
  2. runs it on a fresh kernel in a sandbox of its own (sandbox.py:
     bubblewrap; its own PID namespace and user, no network, no process left
     behind, limits on memory, processes, file size, output and time; nothing
     of the clone but the crate as graded, without the features that answer
     the homework), with a time limit per cell (10 times the solution's own
     time for that cell, at least 30 s; --cell-timeout sets one for all) and
     one for the notebook (--timeout). The cells are run by a collector of
     the grader's own outside the sandbox (sandbox_worker.py), which takes a
     test's values only from that test's cell while it runs (handin.py);
  3. checks those values in its own kernel, outside the sandbox, with the
     tests' checks and the crate's own reference answers, on the inputs
     drawn from the same seed; a test passes only on its check's verdict
     there.

Notebooks are graded side by side (--jobs, default one more than the cores), each
sandbox with its share of libtorch's threads. It writes one CSV line per
student (points per test, total, status) in the order of the submissions,
and a feedback text per student, and prints a line per graded notebook with
how many are left. One broken, endless or hostile notebook, or a file of any
kind or name in the submissions folder, does not stop the others: it gets a
row saying what was wrong. Names are shown and written safely (no control
characters; a CSV cell that would start a formula is quoted as text;
feedback files named so that they cannot collide or be too long). Where this machine cannot sandbox, it refuses and says why;
--unsafe-no-sandbox grades without one (student code can then read and
write what the grader can), saying so on every line.
"""
import argparse
import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
import unicodedata
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handin import VALUE_EXT, canonical, decode_report  # noqa: E402
from homework import Homework, HomeworkError  # noqa: E402
from nbshared import ROOT, copy_build_folder, cores_each, lab_home, save_timing, timing_file  # noqa: E402
from sandbox import Sandbox, SandboxUnavailable, physical_memory, withhold_spec  # noqa: E402

MASTER = ROOT / "notebooks" / "homework_smoothgrad.ipynb"
SUBMISSION_CAP = 32 << 20
CHECKS_TIMEOUT = 600  # the first checks compute the references (SmoothGrad, RISE)


def failure_message(text):
    """The line a student should read: the message, not the panic's location."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("thread '", "panicked at", "stack backtrace", "note:")):
            return line[:300]
    return text.strip()[:300] or "failed"


class Checker:
    """The grader's own kernel, outside any sandbox, on set-up's full crate:
    one cell defining every test's checks (with its own run of the
    solution's set-up code), then per submission one call of them on the
    values it handed in. No code of a student's runs here: it reads their
    values as data (checked and rewritten by `canonical` first)."""

    def __init__(self, hw, threads=None):
        self.hw, self.threads = hw, threads
        self.lock = threading.Lock()
        self.km = self.kc = None
        self.dir = tempfile.TemporaryDirectory(prefix="grading-checks-")
        os.chmod(self.dir.name, 0o700)

    def start(self):
        from jupyter_client.manager import KernelManager
        env = dict(os.environ)
        env["SALIENCY_LAB_EVCXR_TMPDIR"] = str(copy_build_folder("checker"))
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        self.km = KernelManager(kernel_name="rust")
        self.km.start_kernel(cwd=str(ROOT / "notebooks"), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        for source in self.hw.checker_cells():
            errors = self.run(source, 900)
            if errors:
                raise RuntimeError(f"the grader's kernel could not define the checks: {errors[:2000]}")

    def run(self, code, timeout):
        """Runs a cell; returns its error text ('' if none)."""
        errors = []

        def hook(msg):
            t, c = msg["msg_type"], msg["content"]
            if t == "error":
                errors.append(f"{c.get('ename', '')}: {c.get('evalue', '')}")
            elif t == "stream" and c.get("name") == "stderr":
                errors.append(c.get("text", ""))

        reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        if reply["content"].get("status") != "ok" and not errors:
            errors.append(reply["content"].get("evalue", "the cell failed"))
        return "".join(errors).strip()

    def verdicts(self, folder, tests, seeds):
        """{test id: (passed, message)} for `tests`, checked on the values
        in `folder` with the inputs drawn from `seeds[test id]`; None if the
        grader's kernel failed on them twice (a new kernel each time)."""
        if not tests:
            return {}
        with self.lock:
            for _ in range(2):
                record = Path(self.dir.name) / f"verdicts-{time.monotonic_ns()}.tsv"
                try:
                    if self.km is None:
                        self.start()
                    errors = self.run(self.hw.checks_call(folder, record, tests, seeds), CHECKS_TIMEOUT)
                except Exception as e:  # noqa: BLE001: hung, died, or could not start
                    errors = f"{type(e).__name__}: {e}"
                found = {}
                if record.exists():
                    for line in record.read_text(errors="replace").split("\n"):
                        if not line:
                            continue
                        gid, status, message = (line.split("\t", 2) + ["", ""])[:3]
                        # One verdict per test: a second one is not an update.
                        found[gid] = (False, "two verdicts for one test") if gid in found else (status == "pass", message)
                if all(t.id in found for t in tests):
                    return {t.id: found[t.id] for t in tests}
                print(f"grade.py: the grader's kernel gave no verdict ({clean(errors)[:500]}); starting a new one",
                      file=sys.stderr, flush=True)
                self.close()
            return None

    def close(self):
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            try:
                self.km.shutdown_kernel(now=True)
            except Exception:
                pass
        self.km = self.kc = None


def clean(text):
    """Text from a sandbox made safe to print and write: valid UTF-8, no
    control characters but newlines and tabs."""
    text = str(text).encode("utf-8", "replace").decode("utf-8", "replace")
    return "".join(c if c in "\n\t" or (c.isprintable() and c not in "\u2028\u2029") else "?" for c in text)


MISSING = re.compile(r"(?:cannot find|unresolved import|could not find|no function or associated item named"
                     r"|failed to resolve)[^`]*`(?:[A-Za-z_][A-Za-z0-9_]*::)*([A-Za-z_][A-Za-z0-9_]*)`")


def withheld_note(cells, names, features):
    """Why answers fail for using the crate's own answer to the homework:
    withheld names the student's own code uses and does not define, that
    the compiler could not find; or the crate's error for a withheld method
    reached through its registry. '' where neither."""
    used, runtime = set(), set()
    for c in cells:
        if c.get("role") not in ("answer", "added") or not c.get("errors"):
            continue
        errors, source = str(c["errors"]), str(c.get("source", ""))
        for n in MISSING.findall(errors):
            defined = re.search(rf"\b(fn|struct|enum|mod|type|trait|let|const|static)\s+{re.escape(n)}\b", source)
            if n in names and re.search(rf"\b{re.escape(n)}\b", source) and not defined:
                used.add(n)
    for c in cells:
        for f in re.findall(r"this build of the crate is without \(the `([a-z-]+)` feature", str(c.get("errors", ""))):
            if f in features:
                runtime.add(f)
    if not used and not runtime:
        return ""
    what = ", ".join(f"`{n}`" for n in sorted(used)) or ", ".join(f"the crate's `{f}`" for f in sorted(runtime))
    return (f"your answer uses {what}, the crate's own answer to this homework, which grading withholds: "
            "the task is to write it yourself")


def sandbox_result(result, tests):
    """The collector's report, its cells' text made safe to print (the
    student's output), and its hand-ins decoded; None if it is not one."""
    if not isinstance(result, dict) or not isinstance(result.get("cells"), list):
        return None
    cells = []
    for c in result["cells"]:
        if not isinstance(c, dict):
            return None
        cells.append({
            "role": c.get("role") if isinstance(c.get("role"), str) else "",
            "id": c.get("id") if isinstance(c.get("id"), str) else None,
            "errors": clean(c.get("errors", ""))[:4096],
            "ran": bool(c.get("ran")), "timed_out": bool(c.get("timed_out")), "killed": bool(c.get("killed")),
            "seconds": c["seconds"] if isinstance(c.get("seconds"), (int, float)) else None,
        })
    return {"cells": cells, "error": clean(result.get("error") or "")[:300],
            "hand_in": decode_report(result.get("hand_in"), tests)}


def test_seeds(seed, tests):
    """Each test's seed, from the submission's."""
    return {t: int(hashlib.sha256(f"{seed}:{t}".encode()).hexdigest()[:15], 16) for t in tests}


class Grader:
    """One grading run of one homework: the sandbox (prepared for the
    homework's withheld features), the grader's own kernel for the checks,
    the cells' time limits. A lock keeps another run from sharing the
    grading folders meanwhile."""

    def __init__(self, master_path, jobs, cell_timeout, timeout, unsafe, log=print):
        self.master_path = Path(master_path)
        self.hw = Homework(json.loads(self.master_path.read_text()))
        self.timeout, self.log = timeout, log
        self.lock = grading_lock(log)
        spec = withhold_spec()
        self.withheld_names = {n for f in self.hw.withhold for n in spec[f]["names"]}
        self.sandbox = Sandbox(unsafe=unsafe, jobs=jobs or default_jobs())
        why = self.sandbox.check()
        if why:
            raise SandboxUnavailable(
                f"cannot grade safely on this machine: {why}. To grade anyway, without a sandbox (a student's "
                "code can then read the hidden tests and write anything the grader can): --unsafe-no-sandbox")
        if jobs is None:
            # Without a cgroup, side-by-side sandboxes share per-user limits:
            # one fork bomb would stall its neighbours. One at a time then.
            jobs = default_jobs() if self.sandbox.cgroups or unsafe else 1
        self.jobs = jobs
        self.sandbox.set_jobs(jobs)
        log(f"sandbox: {self.sandbox.isolation()}; {jobs} at a time")
        self.sandbox.prepare(self.hw.withhold, log=log)
        self.threads = cores_each(jobs)
        self.checker = Checker(self.hw, threads=self.threads)
        self.limits = self.cell_limits(cell_timeout)

    def cell_limits(self, cell_timeout):
        """Per-cell limits: --cell-timeout for every cell, or 10 times the
        solution's own time per cell (at least 30 s), the solution being
        graded once, alone, to time it (and its timing kept)."""
        if cell_timeout:
            return {"cells": {}, "other": cell_timeout}
        cache = timing_file(self.master_path, lab_home() / "grading")
        timing = json.loads(cache.read_text()) if cache.exists() else None
        if timing is None:
            self.log("grading the solution once, alone, for the cells' time limits ...")
            status, results, note, timing = self.grade_notebook(json.loads(self.master_path.read_text()),
                                                                {"cells": {}, "other": 600}, slot=0)
            failed = {gid: r["message"] for gid, r in results.items() if not r["passed"]}
            if status != "ok" or failed:
                raise HomeworkError(f"the solution itself does not pass ({status}; {note}; failed: {failed}): fix it")
            save_timing(self.master_path, timing, lab_home() / "grading")
        limit = lambda t: max(30.0, 10.0 * t)
        return {"cells": {gid: limit(t) for gid, t in timing.items()},
                "other": limit(max(timing.values(), default=3.0))}

    def grade_notebook(self, submission, limits, slot, seed=0):
        """(status, {test: {"passed", "message"}}, note, timing) for one
        submission (its parsed JSON), the hidden tests' inputs drawn from
        `seed`."""
        ids = [t.id for t in self.hw.tests]
        seeds = test_seeds(seed, ids)
        nb = self.hw.sandbox_notebook(submission, seeds)
        result, note = self.sandbox.run({"mode": "run", "notebook": nb, "limits": limits, "tests": ids},
                                        slot=slot, threads=self.threads, timeout=self.timeout)
        fail_all = lambda why: {t.id: {"passed": False, "message": why} for t in self.hw.tests}
        if result is None:
            status = "timeout" if "did not finish" in note else "error"
            return status, fail_all(f"not graded: {note}"), note, {}
        result = sandbox_result(result, ids)
        if result is None:
            return "error", fail_all("not graded: the collector's report was unreadable"), "unreadable report", {}
        cells = result["cells"]
        if len(cells) == len(nb["cells"]):  # what each cell ran, for the notes on withheld names
            for c, built in zip(cells, nb["cells"]):
                c["source"] = built["source"]
        by_test = {c["id"]: c for c in cells if c["role"] == "test"}
        withheld = withheld_note(cells, self.withheld_names, self.hw.withhold)
        results, to_check = {}, []
        folder = Path(self.checker.dir.name) / f"hand-in-{time.monotonic_ns()}"
        for t in self.hw.tests:
            verdict = self.before_check(t, by_test.get(t.id, {}), result["hand_in"][t.id], folder, limits)
            if verdict is None:
                to_check.append(t)
            else:
                results[t.id] = {"passed": False, "message": verdict + (f" ({withheld})" if withheld else "")}
        checked = self.checker.verdicts(folder, to_check, seeds)
        shutil.rmtree(folder, ignore_errors=True)
        if checked is None:
            return ("grader-error", {**results, **fail_all("not graded: the grader's checks failed (see its log)")},
                    "the grader's own kernel failed twice on this notebook's values", {})
        for gid, (passed, message) in checked.items():
            results[gid] = {"passed": passed, "message": message}
        name = lambda c: c["id"] or ("a cell you added" if c["role"] == "added" else "a cell")
        timed_out = [name(c) for c in cells if c["timed_out"]]
        killed = [name(c) for c in cells if c["killed"]]
        timing = {c["id"]: c["seconds"] for c in cells if c["id"] and c["seconds"] is not None}
        notes = []
        if timed_out:
            notes.append(f"cell(s) interrupted at their time limit: {', '.join(timed_out)}")
        if killed:
            notes.append(f"cell(s) whose process the sandbox killed (its memory limit): {', '.join(killed)}")
        if result["error"]:
            notes.append(f"the kernel stopped: {result['error']}")
        if withheld:
            notes.append(withheld)
        edited = self.hw.locked_edits(submission)
        if edited:
            notes.append(f"you changed cell(s) {', '.join(edited)}, which the grader runs as the solution has them")
        tampered = [t.id for t in self.hw.tests if result["hand_in"][t.id][2]]
        if tampered:
            notes.append(f"tampering with the hand-ins of {', '.join(tampered)}")
        status = "timeout" if timed_out else ("error" if result["error"] else ("tampering" if tampered else "ok"))
        return status, results, "; ".join(notes), timing

    def before_check(self, test, cell, handed, folder, limits):
        """Why test `test` fails before any check (None: check its values).
        `cell`: the collector's report of the test's cell; `handed`: what the
        cell handed in (values, outcome, tampering; handin.py)."""
        values, outcome, tampering = handed
        if tampering:
            return f"tampering: {clean(tampering[0])} (the grader takes a test's values only from its own cell, once)"
        if cell.get("timed_out"):
            limit = limits.get("cells", {}).get(test.id, limits.get("other", 0))
            return f"interrupted: the cell did not finish within {limit:.0f} s"
        errors = cell.get("errors", "")
        if outcome is None:
            if cell.get("killed"):
                return "the sandbox killed the test's process (over its memory limit)"
            if errors:
                return failure_message(errors)
            return "the test did not run" if not cell.get("ran") else "the test gave no outcome"
        ok, message = outcome
        if not ok:
            return failure_message(clean(message))
        expected = {f"{n}.{VALUE_EXT[ty]}": (n, ty) for n, ty in test.values}
        extra = sorted(set(values) - set(expected))
        if extra:
            return f"values the test did not hand in: {clean(', '.join(extra))[:200]} (tampering)"
        (folder / test.id).mkdir(parents=True, exist_ok=True)
        for fname, (n, ty) in expected.items():
            if fname not in values:
                return f"`{n}` was not handed in"
            if values[fname] is None:
                return f"`{n}` was over the size the grader reads"
            why = canonical(values[fname], VALUE_EXT[ty], folder / test.id / fname)
            if why:
                return f"`{n}` is not a {ty}: {clean(why)}"
        return None

    def close(self):
        self.checker.close()
        self.sandbox.kill_all()
        self.lock.close()


def grading_lock(log):
    """An exclusive lock on set-up's grading folder for this run: two runs at
    once would replace each other's crate copy and build folders."""
    import fcntl
    path = lab_home() / "grading" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("another grading run holds the grading folder; waiting for it to finish ...")
        fcntl.flock(f, fcntl.LOCK_EX)
    return f


NAME_CAP = 80  # characters of a student's name as shown


@dataclass
class Submission:
    """One student's entry in the submissions folder: `name` as shown and in
    the CSV (printable, at most NAME_CAP characters), `key` its feedback
    file's name (unique, plain, short), and its notebook (`path`) or why
    there is none (`why`)."""
    name: str
    key: str
    path: Path = None
    why: str = ""


def shown_name(raw):
    """A file name's bytes as a name to show: UTF-8 (anything else replaced),
    no control or format characters, at most NAME_CAP characters."""
    text = raw.decode("utf-8", "replace")
    text = "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in text).strip()
    if len(text) > NAME_CAP:
        text = text[:NAME_CAP - 1] + "\u2026"
    return text or "(no name)"


def csv_text(value):
    """A CSV cell that a spreadsheet shows as text, never runs as a formula
    (OWASP's advice: a cell starting with = + - @ tab or CR gets a quote)."""
    value = str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def kind_of(mode):
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "not a regular file"


def submissions_in(folder, master):
    """One Submission per student: `NAME.ipynb`, or the notebook in a folder
    `NAME/` (the one named like the homework where there are several).
    Nothing is followed or opened here: a symbolic link (to the solution, to
    a classmate's notebook), a FIFO, a device or a socket named `.ipynb` is a
    row saying so. Entries in the order of their names' bytes."""
    wanted = {(master.stem + ".ipynb").encode(), (master.stem + "_student.ipynb").encode()}
    found = []  # (name's bytes, entry's bytes, notebook path or None, why)
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    for e in entries:
        raw = os.fsencode(e.name)
        try:
            mode = os.lstat(e.path).st_mode
        except OSError as err:
            found.append((raw, raw, None, f"could not be read ({err.strerror})"))
            continue
        if stat.S_ISDIR(mode):
            nbs, others = [], []
            try:
                with os.scandir(e.path) as inner:
                    for q in sorted(inner, key=lambda q: os.fsencode(q.name)):
                        if os.fsencode(q.name).endswith(b".ipynb"):
                            qmode = os.lstat(q.path).st_mode
                            (nbs if stat.S_ISREG(qmode) else others).append((q, qmode))
            except OSError as err:
                found.append((raw, raw + b"/", None, f"its folder could not be read ({err.strerror})"))
                continue
            named = [q for q, _ in nbs if os.fsencode(q.name) in wanted]
            if len(nbs) == 1 or len(named) == 1:
                found.append((raw, raw + b"/", Path((named or [nbs[0][0]])[0].path), ""))
            elif nbs:
                listed = ", ".join(shown_name(os.fsencode(q.name)) for q, _ in nbs)[:200]
                found.append((raw, raw + b"/", None, f"several notebooks ({listed}): name yours {master.stem}_student.ipynb"))
            elif others:
                found.append((raw, raw + b"/", None, f"its notebook is {kind_of(others[0][1])}, not a notebook file"))
            else:
                found.append((raw, raw + b"/", None, "no notebook in its folder"))
        elif raw.endswith(b".ipynb"):
            if stat.S_ISREG(mode):
                found.append((raw[:-6], raw, Path(e.path), ""))
            else:
                found.append((raw[:-6], raw, None, f"{kind_of(mode)}, not a notebook file"))
        elif stat.S_ISLNK(mode) and os.path.isdir(e.path):
            found.append((raw, raw, None, "a symbolic link, not a notebook"))
    names = [shown_name(n) for n, *_ in found]
    subs, keys = [], set()
    for (stem, entry, path, why), name in zip(found, names):
        if names.count(name) > 1:  # alice.ipynb and alice/: each named for its entry
            name = shown_name(stem + b" (" + entry + b")")
        key = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "student"
        if key != name or key in keys:
            key = f"{key}-{hashlib.sha256(entry).hexdigest()[:10]}"
        keys.add(key)
        subs.append(Submission(name, key, path, why))
    return subs


def read_submission(sub):
    """The submission's JSON, or why it cannot be read. Opened without
    following a link and without waiting on a FIFO; read only if it is a
    regular file, and only up to the cap."""
    if sub.path is None:
        return None, sub.why
    try:
        fd = os.open(sub.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                return None, f"{kind_of(mode)}, not a notebook file"
            data = f.read(SUBMISSION_CAP + 1)
        if len(data) > SUBMISSION_CAP:
            return None, f"the notebook is over {SUBMISSION_CAP >> 20} MB"
        nb = json.loads(data.decode("utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            return None, "not a notebook (no list of cells)"
        return nb, ""
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        return None, f"the notebook could not be read ({type(e).__name__}: {clean(e)[:200]})"


def feedback_text(title, name, tests, results, status, note, unsafe, seed=None):
    total = sum(pts for gid, pts in tests if results.get(gid, {}).get("passed"))
    lines = [f"{title}: {name}", f"Score: {total:g} / {sum(p for _, p in tests):g}", ""]
    if seed is not None:
        lines += [f"The hidden tests' inputs were drawn with seed {seed} (scripts/grade.py --seed {seed} draws them "
                  "again).", ""]
    if unsafe:
        lines += ["GRADED WITHOUT A SANDBOX (--unsafe-no-sandbox): these marks are not protected from the code graded,",
                  "and the crate's own answer to the homework was within its reach", ""]
    if note:
        lines += [f"Note: {note}", ""]
    for gid, pts in tests:
        r = results.get(gid)
        if r is None:
            lines.append(f"{gid} (0/{pts:g}): not run ({status})")
        elif r["passed"]:
            lines.append(f"{gid} ({pts:g}/{pts:g}): passed")
        else:
            lines.append(f"{gid} (0/{pts:g}): failed: {clean(r['message'])}")
    return total, "\n".join(lines) + "\n"


def default_jobs():
    """One sandbox more than the cores: a fresh kernel's start and the cells'
    compiling leave a core idle at times (measured here, 30 submissions on
    2 cores: 3 side by side took 866 s, 2 side by side about 10% longer);
    at most one per 3 GB of memory."""
    cores = os.cpu_count() or 1
    return max(1, min(cores + 1 if cores > 1 else 1, physical_memory() // (3 << 30)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("submissions", type=Path)
    ap.add_argument("--master", type=Path, default=MASTER, help="the solution notebook with the hidden tests")
    ap.add_argument("--out", type=Path, default=Path("grades.csv"))
    ap.add_argument("--feedback", type=Path, default=Path("feedback"))
    ap.add_argument("--cell-timeout", type=int, help="seconds per cell for every cell (default: 10x the solution's "
                    "time for that cell, at least 30 s; a :dep cell gets 900)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per notebook")
    ap.add_argument("--jobs", type=int,
                    help="notebooks graded side by side (default: one more than the cores, at most one per 3 GB "
                         "of memory: a sandbox's kernel, compiler and libtorch; one where no cgroup limits each "
                         "sandbox)")
    ap.add_argument("--seed", type=int, help="the seed of every submission's hidden test inputs (default: drawn "
                    "afresh per submission; each feedback file says its own)")
    ap.add_argument("--unsafe-no-sandbox", action="store_true",
                    help="grade without a sandbox where this machine cannot make one: a student's code can then "
                         "read the hidden tests, write anything the grader can, and call the crate's own answer")
    args = ap.parse_args()
    unsafe = args.unsafe_no_sandbox
    if unsafe:
        print("\033[1;31mWARNING: grading WITHOUT A SANDBOX (--unsafe-no-sandbox): the submissions' code runs with "
              "your rights and can read and write what you can\033[0m", flush=True)
    subs = submissions_in(args.submissions, args.master)
    start = time.time()
    try:
        grader = Grader(args.master, args.jobs and max(1, min(args.jobs, len(subs))), args.cell_timeout,
                        args.timeout, unsafe)
    except (SandboxUnavailable, HomeworkError, ValueError) as e:
        sys.exit(f"grade.py: {e}")
    jobs = max(1, min(grader.jobs, len(subs)))
    tests = grader.hw.points()
    title = grader.hw.nb.get("metadata", {}).get("saliency_lab", {}).get("title", args.master.stem)
    args.feedback.mkdir(parents=True, exist_ok=True)
    results = [None] * len(subs)
    slots = list(range(jobs))
    done = 0
    lock = threading.Lock()

    def work(k):
        nonlocal done
        sub = subs[k]
        t0 = time.time()
        seed = args.seed if args.seed is not None else secrets.randbits(62)
        nb, why = read_submission(sub)
        if nb is None:
            status, res, note, seed = "unreadable", {}, why, None
        else:
            with lock:
                slot = slots.pop()
            try:
                status, res, note, _ = grader.grade_notebook(nb, grader.limits, slot, seed)
            except Exception as e:  # noqa: BLE001: a grader's bug stops this notebook, not the class
                traceback.print_exc()
                status, res, note = "grader-error", {}, f"the grader failed on this notebook ({type(e).__name__})"
            finally:
                with lock:
                    slots.append(slot)
        total, text = feedback_text(title, sub.name, tests, res, status, note, unsafe, seed)
        try:
            (args.feedback / f"{sub.key}.txt").write_text(text, encoding="utf-8", errors="replace")
        except OSError as e:
            print(f"grade.py: {sub.name}'s feedback could not be written: {e}", file=sys.stderr, flush=True)
        with lock:
            results[k] = (sub.name, res, total, status, seed)
            done += 1
            print(f"{sub.name}: {total:g}/{sum(p for _, p in tests):g} ({status}, {time.time() - t0:.0f} s); "
                  f"{done}/{len(subs)} graded, {len(subs) - done} left" + (" [UNSANDBOXED]" if unsafe else ""),
                  flush=True)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        list(pool.map(work, range(len(subs))))
    except BaseException:  # interrupted (Ctrl-C): nothing more is graded; the sandboxes die with the grader
        pool.shutdown(wait=False, cancel_futures=True)
        grader.close()
        raise
    pool.shutdown()
    grader.close()
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [gid for gid, _ in tests] + ["total", "max", "status", "seed"])
        for name, res, total, status, seed in results:
            w.writerow([csv_text(name)] + [pts if res.get(gid, {}).get("passed") else 0 for gid, pts in tests]
                       + [total, sum(p for _, p in tests), status, "" if seed is None else seed])
    print(f"graded {len(subs)} notebook(s) in {time.time() - start:.0f} s ({jobs} at a time) -> {args.out}, "
          f"feedback in {args.feedback}/")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: the notebooks graded so far have their feedback; no grades file was written")
