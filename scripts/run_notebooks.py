#!/usr/bin/env python3
"""Executes the lab's notebooks headlessly through the real Rust (evcxr) kernel.

  scripts/run_notebooks.py                 all notebooks in notebooks/ -> notebooks/executed/ + report/index.html
  scripts/run_notebooks.py --check         the same, then fail on any error output, a missing figure,
                                           or the lab's correct-class scores off by more than 0.02
  scripts/run_notebooks.py --warm          warm evcxr's build cache with the crate (set-up runs this)
  scripts/run_notebooks.py --hints NB      run every ```rust block of NB's text cells, after its set-up cell,
                                           as a student would try them; fail on any error
  scripts/run_notebooks.py NOTEBOOK...     only these

Notebooks run two side by side on two cores or more (--jobs), each kernel with
its share of libtorch's threads and its own copy of evcxr's build folder.

Each executed notebook keeps nbclient's per-cell timing: a line per notebook
(its `:dep` cell, slowest and median cell) is printed, and report/timing.md has
those and every code cell. report/index.html shows each notebook's status,
time and figures (thumbnails), and links to it whole.
Run through scripts/env.sh (scripts/lab --headless does).
"""
import argparse
import html
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from nbshared import ROOT, cell_errors, cell_seconds, cell_timing, lab_home, save_timing, side_by_side, warm_notebook

NOTEBOOKS = ROOT / "notebooks"
EXECUTED = NOTEBOOKS / "executed"
REPORT = ROOT / "report"
KERNEL = "rust"

# What each notebook must show: the number of figures (image outputs) and, for
# the lab, the correct-class scores printed in the original lab.
EXPECTED_FIGURES = {
    "saliency_lab.ipynb": 10,
    "homework_smoothgrad.ipynb": 4,
    "homework_smoothgrad_student.ipynb": 3,
    "trust_lab.ipynb": 6,
    "homework_deletion.ipynb": 0,
    "homework_deletion_student.ipynb": 0,
    "network_visualisation.ipynb": 7,
    "homework_fooling.ipynb": 1,
    "homework_fooling_student.ipynb": 0,
    "propagation_lab.ipynb": 4,
}
LAB_SCORES = [
    24.1313, 25.1475, 38.8825, 25.4514, 30.2723, 25.4353, 15.6568, 34.9214, 22.9094, 13.7762,
    18.1419, 10.5448, 23.5066, 46.3714, 39.0091, 27.1299, 25.8614, 19.7288, 18.6807, 20.9641,
    25.2686, 18.7046, 21.7245, 12.6422, 15.0523,
]


def execute(path, out_dir, timeout, allow_errors=True):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name=KERNEL, timeout=timeout, allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}}, record_timing=True,
        startup_timeout=120,
    )
    start = time.time()
    try:
        client.execute()
    except CellExecutionError as e:  # only without allow_errors
        print(e, file=sys.stderr)
    wall = time.time() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    return nb, wall


def errors_of(nb, allowed=None):
    found = []
    for i, cell in enumerate(nb.cells):
        text = cell_errors(cell)
        if text and not (allowed and allowed in text):
            found.append((i, text[:300]))
    return found


def figures_of(nb):
    return sum(
        1 for cell in nb.cells for out in cell.get("outputs", [])
        if out.get("output_type") in ("display_data", "execute_result") and "image/png" in out.get("data", {})
    )


def scores_in(text):
    """The correct-class scores in a cell's printed text: the first 1-D
    `tensor([...])` of 25 numbers, as PyTorch prints `scores_y`; or None."""
    for m in re.finditer(r"tensor\(\[([^\[\]]*)\]\)", text):
        try:
            values = [float(v) for v in m.group(1).replace("\n", " ").split(",")]
        except ValueError:
            continue
        if len(values) == 25:
            return values
    return None


def printed_scores(nb):
    """The correct-class scores the lab notebook prints (`scores_in`)."""
    for cell in nb.cells:
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        if (values := scores_in(text)) is not None:
            return values
    return None


def check(name, nb):
    # The student version's stubs panic with todo!(); nothing else may fail.
    allowed = "not yet implemented" if name.endswith("_student.ipynb") else None
    problems = [f"cell {i}: {e}" for i, e in errors_of(nb, allowed)]
    want = EXPECTED_FIGURES.get(name)
    got = figures_of(nb)
    if want is not None and got != want:
        problems.append(f"{got} figures, expected {want}")
    if name == "saliency_lab.ipynb":
        scores = printed_scores(nb)
        if scores is None or len(scores) != 25:
            problems.append("the correct-class scores were not printed")
        else:
            worst = max(abs(a - b) for a, b in zip(scores, LAB_SCORES))
            if worst > 0.02:
                problems.append(f"correct-class scores off the lab's by {worst:.4f} > 0.02")
    return problems


def figure_pngs(nb):
    """(cell index, PNG bytes) of every figure an executed notebook shows."""
    import base64
    return [(i, base64.b64decode(out["data"]["image/png"]))
            for i, cell in enumerate(nb.cells) for out in cell.get("outputs", [])
            if out.get("output_type") in ("display_data", "execute_result") and "image/png" in out.get("data", {})]


REPORT_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 75em; color: #222; }
section { border-top: 1px solid #ccc; padding: 0.5em 0 1em; }
.ok { color: #17702b; } .failed { color: #b00020; }
.thumbs a { display: inline-block; margin: 0 0.5em 0.5em 0; }
.thumbs img { height: 140px; border: 1px solid #ddd; }
td, th { padding: 0.1em 0.8em; text-align: left; }
"""


def report(results):
    """report/index.html: per notebook its status (and what failed), its
    time, and its figures as thumbnails (report/<notebook>/figure-N.png),
    each linking to the figure; the notebook's name links to the whole
    executed notebook as HTML (report/<notebook>.html)."""
    from nbconvert import HTMLExporter
    REPORT.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    sections = []
    for name, nb, wall, problems in results:
        stem = Path(name).stem
        status = ('<span class="ok">ok</span>' if not problems else
                  '<span class="failed">FAILED</span><ul>' + "".join(f"<li>{html.escape(p)}</li>" for p in problems)
                  + "</ul>")
        thumbs = []
        if nb is not None:
            body, _ = exporter.from_notebook_node(nb)
            (REPORT / f"{stem}.html").write_text(body)
            folder = REPORT / stem
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            for k, (cell, png) in enumerate(figure_pngs(nb), 1):
                f = folder / f"figure-{k}.png"
                f.write_bytes(png)
                rel = html.escape(f"{stem}/{f.name}")
                thumbs.append(f'<a href="{rel}"><img src="{rel}" alt="figure {k} (cell {cell})" '
                              f'title="figure {k}, cell {cell}"></a>')
        title = (f'<a href="{html.escape(stem)}.html">{html.escape(name)}</a>' if nb is not None
                 else html.escape(name))
        figures = len(thumbs)
        sections.append(f"<section><h2>{title}</h2><p>{status} &middot; {wall:.0f} s &middot; {figures} "
                        f"figure{'s' * (figures != 1)}</p><div class=thumbs>{''.join(thumbs)}</div></section>")
    index = REPORT / "index.html"
    failed = sum(1 for *_, p in results if p)
    summary = f"{len(results)} notebook(s), " + (f"{failed} failed" if failed else "all ok")
    index.write_text(
        f"<!doctype html><meta charset=utf-8><title>Saliency lab: executed notebooks</title>"
        f"<style>{REPORT_STYLE}</style><h1>Saliency lab: executed notebooks</h1>"
        f"<p>{summary}; cell by cell timing: <a href=timing.md>timing.md</a></p>" + "".join(sections))
    return index


def timing_table(executed, walls):
    """The run's timing in Markdown: (a line per notebook, every code cell
    of each with its seconds and first line)."""
    rows = ["| notebook | whole run (s) | `:dep` cell (s) | slowest other cell (s) | median cell (s) |", "|---|---|---|---|---|"]
    cells = []
    fmt = lambda v: "-" if v is None else f"{v:.1f}"
    for name, nb in executed:
        if nb is None:
            rows.append(f"| {name} | {walls[name]:.0f} | - | - | - |")
            continue
        times = [(i, cell_seconds(c), c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        dep = next((t for _, t, s in times if s.lstrip().startswith(":dep")), None)
        others = sorted(t for _, t, s in times if t is not None and not s.lstrip().startswith(":dep"))
        med = others[len(others) // 2] if others else None
        rows.append(f"| {name} | {walls[name]:.0f} | {fmt(dep)} | {fmt(others[-1] if others else None)} | {fmt(med)} |")
        cells += ["", f"### {name}", "", "| cell | seconds | first line |", "|---|---|---|"]
        for i, t, s in times:
            first = next((l.strip() for l in s.splitlines() if l.strip()), "")[:80].replace("|", "\\|")
            cells.append(f"| {i} | {fmt(t)} | `{first}` |")
    return "\n".join(rows), "\n".join(cells)


# Started first when notebooks run side by side: the longest one.
SLOWEST_FIRST = ["trust_lab.ipynb"]


def run_all(paths, timeout, jobs):
    """Executes the notebooks, `jobs` side by side, and returns (path,
    executed notebook or None, seconds) in the order of `paths`. Side by side,
    each kernel runs in a child process with its share of libtorch's threads
    (more threads than cores spin against each other) and its own copy of
    evcxr's warmed build folder (two kernels must not build in one folder)."""
    if jobs == 1:
        return [(p, *execute(p, EXECUTED, timeout)) for p in paths]
    import subprocess
    from concurrent.futures import ThreadPoolExecutor
    free, threads = side_by_side(jobs)
    order = sorted(range(len(paths)), key=lambda i: (paths[i].name not in SLOWEST_FIRST, i))
    results = [None] * len(paths)
    done = 0

    def one(i):
        nonlocal done
        p = paths[i]
        out = EXECUTED / p.name
        out.unlink(missing_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        tmpdir = free.pop()
        if tmpdir:
            env["SALIENCY_LAB_EVCXR_TMPDIR"] = str(tmpdir)
        start = time.time()
        try:
            subprocess.run([sys.executable, __file__, "--execute-one", str(p), "--timeout", str(timeout)],
                           env=env, check=False)
        finally:
            free.append(tmpdir)
        wall = time.time() - start
        results[i] = (p, nbformat.read(out, as_version=4) if out.exists() else None, wall)
        done += 1
        print(f"{p.name}: run in {wall:.0f} s; {done}/{len(paths)} run, {len(paths) - done} left", flush=True)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        list(pool.map(one, order))
    except BaseException:  # interrupted (Ctrl-C): no queued notebook starts
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def keep_solution_timing(path, nb):
    """A homework's solution that ran cleanly: its per-cell timing, kept for
    the grader's cell limits (scripts/grade.py would otherwise run the
    solution once more to time it)."""
    timing = cell_timing(nb)
    if timing:
        save_timing(path, timing)


def warm(timeout):
    """Runs the crate's `:dep` and one call in a throwaway notebook, so the
    build cache in $EVCXR_TMPDIR holds the crate and its dependencies."""
    nb = nbformat.from_dict(warm_notebook(ROOT / "crate"))
    tmp = ROOT / "notebooks" / ".warm.ipynb"
    nbformat.write(nb, tmp)
    try:
        start = time.time()
        done, _ = execute(tmp, lab_home() / "warm", timeout)
        problems = errors_of(done)
        print(f"evcxr cache warm in {time.time() - start:.0f} s" + (f"; problems: {problems}" if problems else ""))
        return 1 if problems else 0
    finally:
        tmp.unlink(missing_ok=True)


def hints(path, timeout):
    """Runs the ```rust code blocks of a notebook's markdown cells (its hints)
    after its first code cell (the set-up), each block a cell of its own."""
    src = nbformat.read(path, as_version=4)
    setup = next(c for c in src.cells if c.cell_type == "code")
    blocks = [b.split("\n", 1)[1] for c in src.cells if c.cell_type == "markdown"
              for b in re.findall(r"```rust\n.*?```", c.source, re.S)]
    blocks = [b.rsplit("```", 1)[0] for b in blocks]
    if not blocks:
        print(f"{path.name}: no ```rust blocks")
        return 1
    nb = nbformat.v4.new_notebook(metadata=src.metadata)
    nb.cells = [nbformat.v4.new_code_cell(setup.source)] + [nbformat.v4.new_code_cell(b) for b in blocks]
    tmp = path.parent / f".hints-{path.stem}.ipynb"
    nbformat.write(nb, tmp)
    try:
        done, _ = execute(tmp, lab_home() / "hints", timeout)
    finally:
        tmp.unlink(missing_ok=True)
    problems = errors_of(done)
    print(f"{path.name}: {len(blocks)} hint block(s) run" + (f"; errors: {problems}" if problems else ", no errors"))
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--warm", action="store_true")
    ap.add_argument("--hints", type=Path, help="a notebook whose ```rust blocks to run")
    ap.add_argument("--timeout", type=int, default=900, help="per-cell limit in seconds (a cold :dep builds tch)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="notebooks run side by side (default: 2, or 1 on one core)")
    ap.add_argument("--execute-one", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.warm:
        sys.exit(warm(args.timeout))
    if args.hints:
        sys.exit(hints(args.hints.resolve(), args.timeout))
    if args.execute_one:
        execute(args.execute_one.resolve(), EXECUTED, args.timeout)
        return
    paths = [p.resolve() for p in (args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")))]
    results, walls, failed = [], {}, False
    for p, nb, wall in run_all(paths, args.timeout, max(1, min(args.jobs, len(paths)))):
        walls[p.name] = wall
        problems = check(p.name, nb) if nb is not None else ["the notebook did not run (its kernel process failed)"]
        results.append((p.name, nb, wall, problems))
        status = "ok" if not problems else "FAILED"
        print(f"{p.name}: {status} in {wall:.0f} s, {figures_of(nb) if nb is not None else 0} figures")
        for pr in problems:
            print(f"  - {pr}")
        failed |= bool(problems)
        if not problems and not p.name.endswith("_student.ipynb"):
            keep_solution_timing(p, nb)
    index = report(results)
    table = timing_table([(name, nb) for name, nb, _, _ in results], walls)
    summary, cells = table
    (REPORT / "timing.md").write_text(summary + "\n" + cells + "\n")
    print(summary)
    print(f"executed notebooks: {EXECUTED}\nreport: {index}")
    sys.exit(1 if (failed and args.check) else 0)


if __name__ == "__main__":
    main()
