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
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gradebook  # noqa: E402
import report  # noqa: E402
import similarity  # noqa: E402
from gradebook import Record  # noqa: E402
from checker import Checker, failure_message  # noqa: E402
from handin import VALUE_EXT, canonical, clean, safe_png  # noqa: E402
from homework import Homework, HomeworkError, rust_str  # noqa: E402
from nbshared import ROOT, cores_each, lab_home, save_timing, source_of, timing_file  # noqa: E402
from sandbox import Sandbox, SandboxUnavailable, physical_memory  # noqa: E402
from sandbox_worker import read_report  # noqa: E402
from submissions import read_submission, submissions_in  # noqa: E402
from withhold import crate_digest, withhold_spec  # noqa: E402

MASTER = ROOT / "notebooks" / "homework_smoothgrad.ipynb"


@dataclass
class Graded:
    """What grading one notebook found: its status, {test: {"passed",
    "message"}}, a note, each cell's time, and the figures its answer cells
    drew [(answer id, PNG bytes)]."""
    status: str
    results: dict
    note: str = ""
    timing: dict = None
    figures: list = None


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
            g = self.grade_notebook(json.loads(self.master_path.read_text()), {"cells": {}, "other": 600}, slot=0)
            failed = {gid: r["message"] for gid, r in g.results.items() if not r["passed"]}
            if g.status != "ok" or failed:
                raise HomeworkError(f"the solution itself does not pass ({g.status}; {g.note}; failed: {failed}): fix it")
            timing = g.timing
            save_timing(self.master_path, timing, lab_home() / "grading")
        limit = lambda t: max(30.0, 10.0 * t)
        return {"cells": {gid: limit(t) for gid, t in timing.items()},
                "other": limit(max(timing.values(), default=3.0))}

    def grade_notebook(self, submission, limits, slot, seed=0, keep=None):
        """A `Graded` for one submission (its parsed JSON), the hidden tests'
        inputs drawn from `seed`; the values it handed in kept in the folder
        `keep` (for a later regrade of the checks) where one is given."""
        ids = [t.id for t in self.hw.tests]
        seeds = test_seeds(seed, ids)
        nb = self.hw.sandbox_notebook(submission, seeds)
        result, note = self.sandbox.run({"mode": "run", "notebook": nb, "limits": limits, "tests": ids},
                                        slot=slot, threads=self.threads, timeout=self.timeout)
        fail_all = lambda why: {t.id: {"passed": False, "message": why} for t in self.hw.tests}
        if result is None:
            status = "timeout" if "did not finish" in note else "error"
            return Graded(status, fail_all(f"not graded: {note}"), note, {}, [])
        result = read_report(result, ids)
        if result is None:
            return Graded("error", fail_all("not graded: the collector's report was unreadable"), "unreadable report",
                          {}, [])
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
        if keep is not None and folder.is_dir():
            shutil.rmtree(keep, ignore_errors=True)
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), str(keep))
        shutil.rmtree(folder, ignore_errors=True)
        if checked is None:
            return Graded("grader-error", {**results, **fail_all("not graded: the grader's checks failed (see its log)")},
                          "the grader's own kernel failed twice on this notebook's values", {}, [])
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
        figures = []
        for c in cells:
            owner = c["id"] if c["role"] == "answer" else (c["after"] if c["role"] == "added" else None)
            for png in c.get("pngs", []):
                data = safe_png(png)
                if data is not None:
                    figures.append((owner or "", data))
        return Graded(status, results, "; ".join(notes), timing, figures)

    def recheck(self, folder, tests, seed):
        """{test: {"passed", "message"}} of `tests` checked again on the values
        a submission handed in last time (in `folder`), the inputs drawn from
        its `seed` as then; None if the grader's kernel failed."""
        checked = self.checker.verdicts(folder, [self.hw.test(gid) for gid in tests],
                                        test_seeds(seed, [t.id for t in self.hw.tests]))
        if checked is None:
            return None
        return {gid: {"passed": passed, "message": message} for gid, (passed, message) in checked.items()}

    def histogram(self, finals, maximum, path):
        """The marks' histogram drawn by the crate's plot module in the
        grader's own kernel (as the labs' figures are), saved to `path`;
        False where it could not be drawn."""
        top = max(1, int(-(-maximum // 1)))
        counts = [0] * (top + 1)
        for f in finals:
            counts[min(top, max(0, int(f)))] += 1
        labels = ", ".join(f'"{i}"' for i in range(top + 1))
        values = ", ".join(f"{c}.0" for c in counts)
        code = ("{\nlet __fig = ::saliency_lab::plot::BarChart::new(\"marks (after late penalties; a bar per whole "
                f"mark)\", &[{labels}], &[{values}])?.with_axes(\"mark\", \"students\").render()?;\n"
                f"__fig.save_png({rust_str(str(path))})?;\n}}")
        with self.checker.lock:
            try:
                if self.checker.km is None:
                    self.checker.start()
                errors = self.checker.run(code, 300)
            except Exception as e:  # noqa: BLE001 -- the report is written without it
                errors = f"{type(e).__name__}: {e}"
        if errors or not Path(path).is_file():
            print(f"grade.py: the marks' histogram could not be drawn ({clean(errors)[:300]})", file=sys.stderr)
            return False
        return True

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


def default_jobs():
    """One sandbox more than the cores: a fresh kernel's start and the cells'
    compiling leave a core idle at times (measured here, 30 submissions on
    2 cores: 3 side by side took 866 s, 2 side by side about 10% longer);
    at most one per 3 GB of memory."""
    cores = os.cpu_count() or 1
    return max(1, min(cores + 1 if cores > 1 else 1, physical_memory() // (3 << 30)))


def task_titles(hw):
    """{answer cell's id: the title of the task it answers}: the first line
    of the text cell above it in the solution."""
    titles, last = {}, ""
    for cell in hw.cells:
        if cell.get("cell_type") == "markdown":
            lines = [ln.strip().lstrip("#").strip() for ln in source_of(cell).splitlines() if ln.strip()]
            last = lines[0] if lines else last
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and gid in hw.answers:
            titles[gid] = last
    return titles


def answers_of(hw, nb):
    """A notebook's answer cells' source, joined (for the similarity check)."""
    cells = nb.get("cells", []) if isinstance(nb, dict) else []
    return "\n".join(source_of(c) for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"
                     and c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in hw.answers)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("submissions", type=Path)
    ap.add_argument("--master", type=Path, default=MASTER, help="the solution notebook with the hidden tests")
    ap.add_argument("--out", type=Path, default=Path("grades.csv"))
    ap.add_argument("--feedback", type=Path, default=Path("feedback"))
    ap.add_argument("--report", type=Path, help="the class report's folder (default: `report` beside --out)")
    ap.add_argument("--lms", choices=["canvas", "moodle"], help="also write the file that LMS imports "
                    "(--out's name with _canvas or _moodle)")
    ap.add_argument("--deadline", help="ISO date and time (2026-12-01T23:59, local time unless a zone is given); "
                    "a submission's time is nbgrader's timestamp.txt beside it, else its file's")
    ap.add_argument("--late-penalty", default="10,20,30,40,50,60,70,80,90,100",
                    help="percent off for the 1st, 2nd, ... day late (the last for every later day)")
    ap.add_argument("--regrade", action="store_true", help="grade again only what changed since the last run with "
                    "this --out: new or changed notebooks, tests whose code changed (only their checks where only "
                    "the checks changed), unfinished ones, and --student")
    ap.add_argument("--student", action="append", default=[], help="with --regrade: grade this student again "
                    "(repeatable)")
    ap.add_argument("--cell-timeout", type=int, help="seconds per cell for every cell (default: 10x the solution's "
                    "time for that cell, at least 30 s; a :dep cell gets 900)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per notebook")
    ap.add_argument("--jobs", type=int,
                    help="notebooks graded side by side (default: one more than the cores, at most one per 3 GB "
                         "of memory: a sandbox's kernel, compiler and libtorch; one where no cgroup limits each "
                         "sandbox)")
    ap.add_argument("--seed", type=int, help="the seed of every submission's hidden test inputs (default: drawn "
                    "afresh per submission, kept by --regrade; each feedback file says its own)")
    ap.add_argument("--unsafe-no-sandbox", action="store_true",
                    help="grade without a sandbox where this machine cannot make one: a student's code can then "
                         "read the hidden tests, write anything the grader can, and call the crate's own answer")
    args = ap.parse_args()
    unsafe = args.unsafe_no_sandbox
    try:
        deadline = gradebook.parse_deadline(args.deadline) if args.deadline else None
        table = gradebook.parse_penalties(args.late_penalty)
    except ValueError as e:
        sys.exit(f"grade.py: {e}")
    if unsafe:
        print("\033[1;31mWARNING: grading WITHOUT A SANDBOX (--unsafe-no-sandbox): the submissions' code runs with "
              "your rights and can read and write what you can\033[0m", flush=True)
    subs = submissions_in(args.submissions, args.master)
    # What a later --regrade needs: the verdicts, and each submission's
    # handed-in values and figures.
    state = args.out.parent / (args.out.stem + ".grading")
    report_dir = args.report or args.out.parent / "report"
    old = gradebook.load_store(state / "store.json") if args.regrade else {}
    if args.regrade and not old:
        print(f"grade.py: no earlier run in {state}: grading every submission", flush=True)
    start = time.time()
    try:
        grader = Grader(args.master, args.jobs and max(1, min(args.jobs, len(subs))), args.cell_timeout,
                        args.timeout, unsafe)
    except (SandboxUnavailable, HomeworkError, ValueError) as e:
        sys.exit(f"grade.py: {e}")
    jobs = max(1, min(grader.jobs, len(subs)))
    tests = grader.hw.points()
    maximum = sum(p for _, p in tests)
    title = grader.hw.nb.get("metadata", {}).get("saliency_lab", {}).get("title", args.master.stem)
    digests = gradebook.test_digests(grader.hw, crate_digest())
    tasks = task_titles(grader.hw)
    for d in (args.feedback, state / "figures", state / "handins", report_dir):
        d.mkdir(parents=True, exist_ok=True)
    records, answers = [None] * len(subs), {}
    slots = list(range(jobs))
    done, counts = 0, {"graded": 0, "rechecked": 0, "kept": 0}
    lock = threading.Lock()

    def figures_cache(rec, figures=None):
        """Writes (or, with None, reads back) a record's figures."""
        folder = state / "figures" / rec.key
        if figures is None:
            found = sorted(folder.glob("*.png")) if folder.is_dir() else []
            return [(f.stem.split("--", 1)[1] if "--" in f.stem else "", "", f.read_bytes()) for f in found]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (answer, png) in enumerate(figures):
            (folder / f"{i:02d}--{re.sub(r'[^A-Za-z0-9_.-]', '_', answer)}.png").write_bytes(png)
        return [(answer, "", png) for answer, png in figures]

    def grade(sub, nb, prev):
        """The record of a submission graded (or checked again) now, and how."""
        digest = gradebook.submission_digest(nb)
        how, what = gradebook.plan(prev, digest, digests, set(args.student)) if args.regrade else ("run", "")
        if how == "keep":
            rec = Record(**{**prev.stored(), "graded": False})
            rec.figures = figures_cache(rec)
            for r in rec.results.values():
                r["new"] = False
            return rec, "kept"
        if how == "check":
            results = {gid: dict(r) for gid, r in prev.results.items()}
            folder = state / "handins" / prev.key
            stored = [gid for gid in what if (folder / gid).is_dir()]
            checked = grader.recheck(folder, stored, prev.seed) if stored else {}
            if checked is not None:
                results.update(checked)
                for gid in what:
                    results[gid].update(digests[gid])
                rec = Record(**{**prev.stored(), "results": results, "graded": True})
                rec.figures = figures_cache(rec)
                gradebook.mark_new(rec, prev)
                return rec, "rechecked"
        seed = args.seed if args.seed is not None else (
            prev.seed if prev is not None and prev.seed is not None else secrets.randbits(62))
        with lock:
            slot = slots.pop()
        try:
            g = grader.grade_notebook(nb, grader.limits, slot, seed, keep=state / "handins" / sub.key)
        finally:
            with lock:
                slots.append(slot)
        for gid, r in g.results.items():
            r.update(digests[gid])
        rec = Record(sub.name, sub.key, g.status, g.results, g.note, seed, digest=digest)
        rec.figures = figures_cache(rec, g.figures)
        gradebook.mark_new(rec, prev)
        return rec, "graded"

    def work(k):
        nonlocal done
        sub = subs[k]
        t0 = time.time()
        nb, why = read_submission(sub)
        prev = old.get(sub.key)
        how = "graded"
        if nb is None:
            rec = Record(sub.name, sub.key, "unreadable", note=why)
        else:
            try:
                rec, how = grade(sub, nb, prev)
            except Exception as e:  # noqa: BLE001 -- a grader's bug stops this notebook, not the class
                traceback.print_exc()
                rec = Record(sub.name, sub.key, "grader-error",
                             note=f"the grader failed on this notebook ({type(e).__name__})")
            with lock:
                answers[sub.name] = answers_of(grader.hw, nb)
        if how != "kept":
            rec.seconds = time.time() - t0
        rec.submitted = gradebook.submitted_at(sub.path)
        rec.late_days = gradebook.days_late(rec.submitted, deadline)
        rec.penalty = gradebook.penalty(rec.late_days, table)
        total, text = report.feedback_text(title, sub.name, tests, rec.results, rec.status, rec.note, unsafe, rec.seed)
        if rec.late_days:
            text += f"\n{rec.late_days} day(s) late: {100 * rec.penalty:g}% off, final mark {rec.final(tests):g}\n"
        try:
            (args.feedback / f"{sub.key}.txt").write_text(text, encoding="utf-8", errors="replace")
            (args.feedback / f"{sub.key}.html").write_text(report.feedback_page(title, rec, tests, tasks, unsafe),
                                                          encoding="utf-8", errors="replace")
        except OSError as e:
            print(f"grade.py: {sub.name}'s feedback could not be written: {e}", file=sys.stderr, flush=True)
        with lock:
            records[k] = rec
            done += 1
            counts[how] += 1
            print(f"{sub.name}: {total:g}/{maximum:g} ({rec.status}{', ' + how if args.regrade else ''}, "
                  f"{time.time() - t0:.0f} s); {done}/{len(subs)} graded, {len(subs) - done} left"
                  + (" [UNSANDBOXED]" if unsafe else ""), flush=True)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        list(pool.map(work, range(len(subs))))
    except BaseException:  # interrupted (Ctrl-C): nothing more is graded; the sandboxes die with the grader
        pool.shutdown(wait=False, cancel_futures=True)
        grader.close()
        raise
    pool.shutdown()
    gradebook.write_csv(args.out, records, tests)
    gradebook.save_store(state / "store.json", records, str(args.master), digests)
    if args.lms:
        gradebook.write_lms(args.lms, args.out.with_name(f"{args.out.stem}_{args.lms}.csv"), records, tests, title)
    # The class report: the marks' histogram drawn in the grader's kernel.
    starter = answers_of(grader.hw, json.loads(args.master.with_name(args.master.stem + "_student.ipynb").read_text())) \
        if args.master.with_name(args.master.stem + "_student.ipynb").is_file() else ""
    pairs = similarity.similar_pairs(answers, starter)
    finals = [r.final(tests) for r in records if r.status != "unreadable"]
    figure = report_dir / "marks.png"
    histogram = figure.read_bytes() if finals and grader.histogram(finals, maximum, figure) else None
    grader.close()
    settings = [
        ("solution", f"{args.master} (sha256 {hashlib.sha256(args.master.read_bytes()).hexdigest()[:16]})"),
        ("crate as graded", f"digest {crate_digest()}, without {', '.join(grader.hw.withhold) or 'nothing'}"),
        ("sandbox", grader.sandbox.isolation()),
        ("time limits", f"each cell {'--cell-timeout ' + str(args.cell_timeout) + ' s' if args.cell_timeout else '10x the solution, at least 30 s'}; "
                        f"the notebook {args.timeout} s"),
        ("hidden inputs", f"seed {args.seed} for every submission" if args.seed is not None
         else "a seed per submission (in its feedback and the CSV)"),
        ("late penalty", f"deadline {args.deadline}; {args.late_penalty} % off for the 1st, 2nd, ... day late"
         if deadline is not None else "no deadline given"),
        ("this run", ("--regrade: " if args.regrade else "") + f"{counts['graded']} graded, "
                     f"{counts['rechecked']} checked again, {counts['kept']} kept, {jobs} at a time, "
                     f"{time.time() - start:.0f} s"),
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
    ]
    feedback_link = os.path.relpath(args.feedback.resolve(), report_dir.resolve())
    (report_dir / "index.html").write_text(
        report.class_report(title, settings, records, tests, feedback_link, histogram, pairs, similarity.THRESHOLD),
        encoding="utf-8")
    print(f"graded {len(subs)} notebook(s) in {time.time() - start:.0f} s ({jobs} at a time) -> {args.out}, "
          f"feedback in {args.feedback}/, the class report in {report_dir / 'index.html'}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: the notebooks graded so far have their feedback; no grades file was written")
