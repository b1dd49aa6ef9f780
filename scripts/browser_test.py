#!/usr/bin/env python3
"""The browser tier: the lab as a student opens it, in a real browser.

  scripts/browser_test.py [--out DIR] [lab|trust|homework|own-jupyter|report ...]

For each notebook (default: all of them) it starts `scripts/lab --no-browser
NOTEBOOK` exactly as a student would (a port on 127.0.0.1; the token is the
one Jupyter makes and prints), reads the URL Jupyter prints, and opens it in
headless Chromium (Debian's `chromium`, driven by Playwright from PyPI:
Playwright's own browser download is not needed). Then, as a student does:
it checks the kernel's name in the notebook's toolbar, waits for the kernel
to be idle, and runs every cell with Shift+Enter, one at a time, waiting for
each. It fails on an error or any stderr output in a cell (read again at the
end: evcxr's stderr can arrive after the next cell starts), a figure missing
or not shown (the notebook's expected count, each image decoded), an error
in the server's log, or the lab's correct-class scores off the lab's by more
than 0.02. In the homework's student version it types the solution's answers
into the answer cells first (pasted, as a student pastes), so that every
cell runs clean.

`own-jupyter`: a plain JupyterLab installed into a venv of its own (`pip
install jupyterlab`, the student's own Jupyter) lists the kernel set-up
registered for the user, and a new notebook on it runs a cell.

`report`: the grader's class report as an instructor opens it (the grading
test's, from the notebooks tier; else one graded here from three kept
submissions): the pass rates, marks and students it shows against the CSV,
the histogram drawn, a feedback page reached by its link.

Screenshots go to DIR (default: the tests' output folder,
$CARGO_TARGET_DIR/tmp/browser): each notebook when its kernel is idle, each
figure as shown, the end of the run, and the page on a failure. A summary
per notebook goes to stdout and DIR/summary.md.

Run through scripts/env.sh (scripts/test browser does, after installing
Debian's chromium where it is missing).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbshared import ROOT, lab_home  # noqa: E402
from run_notebooks import EXPECTED_FIGURES, LAB_SCORES, scores_in  # noqa: E402

KERNEL_DISPLAY = "Rust (saliency lab)"
SCORE_TOL = 0.02
CELL_TIMEOUT = 300  # seconds; the slowest cell here takes about 40
START_TIMEOUT = 900  # scripts/lab runs set-up first (seconds where it is done)
NOTEBOOKS = {
    "lab": "saliency_lab.ipynb",
    "trust": "trust_lab.ipynb",
    "homework": "homework_smoothgrad_student.ipynb",
}
# The homework's student version gets the solution's answers typed in.
SOLUTIONS = {"homework_smoothgrad_student.ipynb": "homework_smoothgrad.ipynb"}
# Chromium as the machines this is built on need it: no sandbox as root, no
# GPU, and none of its background connections (refused here, many at a time).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

# The notebook the test opened: JupyterLab restores the tabs of its last
# session too (hidden behind the current one).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
JS_PANEL = f"const PANEL = {json.dumps(PANEL)};"
# In the page: one cell's state and outputs, by its index in the notebook.
CELL_JS = """(i) => { JS_PANEL
  const cell = document.querySelector(`${PANEL} .jp-Cell[data-windowed-list-index="${i}"]`);
  if (!cell) return null;
  const prompt = cell.querySelector('.jp-InputArea-prompt');
  const outs = Array.from(cell.querySelectorAll('.jp-OutputArea-output'));
  return {
    code: cell.classList.contains('jp-CodeCell'),
    prompt: prompt ? prompt.innerText.trim() : '',
    stderr: outs.filter(o => o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr')
                .map(o => o.innerText.trim()),
    text: outs.map(o => o.innerText).join('\\n'),
    images: Array.from(cell.querySelectorAll('.jp-OutputArea-output img')).map(
      im => ({complete: im.complete, width: im.naturalWidth, height: im.naturalHeight})),
  };
}""".replace("JS_PANEL", JS_PANEL)
STATUS_JS = """() => { JS_PANEL
  const s = document.querySelector(PANEL + ' .jp-NotebookPanel-toolbar [data-jp-item-name="executionProgress"] [data-status]');
  return s ? s.getAttribute('data-status') : null;
}""".replace("JS_PANEL", JS_PANEL)


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Jupyter server started as a student starts it, its output kept in
    `log`; `url` is the address it printed (with its token)."""

    def __init__(self, argv, log, cwd=None, env=None, what="scripts/lab"):
        self.port = free_port()
        # A workspace of its own: JupyterLab restores the layout of the last
        # session from the user's ~/.jupyter/lab/workspaces, shared by every
        # run and clone (a stale Untitled.ipynb opened beside the new one).
        self.workspaces = Path(tempfile.mkdtemp(prefix="workspaces-", dir=log.parent))
        env = dict(os.environ if env is None else env, JUPYTERLAB_WORKSPACES_DIR=str(self.workspaces))
        self.what, self.log_path = what, log
        self.lines = []
        self.proc = subprocess.Popen(
            argv + ["--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
                    "--ServerApp.port_retries=0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True, cwd=cwd, env=env)
        self.url = None
        found = threading.Event()
        pattern = re.compile(rf"(http://127\.0\.0\.1:{self.port}/\S*token=[0-9a-f]+)")

        def read():
            with open(log, "w") as f:
                for line in self.proc.stdout:
                    f.write(line)
                    f.flush()
                    self.lines.append(line.rstrip("\n"))
                    m = pattern.search(line)
                    if m and self.url is None:
                        self.url = m.group(1)
                        found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(START_TIMEOUT) or self.url is None:
            self.stop()
            raise Failure(f"{what} printed no URL to open (its exit status {self.proc.poll()}); "
                          f"its last lines:\n" + "\n".join(self.lines[-15:]))

    def errors(self):
        """What the server logged as an error: its [E ...] and [C ...] lines
        and Python tracebacks."""
        logged = [re.match(r"\[(?:E|C) [^\]]*\]\s*(.*)", l) for l in self.lines]
        # (Jupyter's banner with the URL is a [C ...] line of its own, empty.)
        return [l for l, m in zip(self.lines, logged) if m and m.group(1)] + \
            [l for l in self.lines if l.startswith("Traceback")]

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.workspaces, ignore_errors=True)


def solution_answers(name):
    """{cell index: source} of the answers the solution gives, as a student
    would write them (without nbgrader's solution markers)."""
    if name not in SOLUTIONS:
        return {}
    sol = json.loads((ROOT / "notebooks" / SOLUTIONS[name]).read_text())
    answers = {}
    for i, cell in enumerate(sol["cells"]):
        if cell["cell_type"] == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            answers[i] = "\n".join(l for l in src.split("\n") if "BEGIN SOLUTION" not in l and "END SOLUTION" not in l)
    return answers


def type_answer(page, index, source):
    """Replaces cell `index`'s code with `source`: click into its editor,
    select all, paste; then checks the editor holds it."""
    editor = page.locator(f'{PANEL} .jp-Cell[data-windowed-list-index="{index}"] .cm-content')
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)
    held = editor.evaluate("e => e.cmView ? e.cmView.view.state.doc.toString() : e.innerText")
    if held.split() != source.split():
        raise Failure(f"cell {index}: the answer typed in reads back differently:\n{held[:500]}")
    page.keyboard.press("Escape")


KERNEL_NAME_JS = """() => { JS_PANEL
  const k = document.querySelector(PANEL + ' .jp-NotebookPanel-toolbar [data-jp-item-name="kernelName"]');
  return k ? k.innerText.trim() : '';
}""".replace("JS_PANEL", JS_PANEL)


def wait_kernel_name(page, timeout=120):
    """The kernel's name in the notebook's toolbar, once JupyterLab has
    started one ("No Kernel" until then; a dialog if it found none)."""
    try:
        page.wait_for_function(f"() => !['', 'No Kernel'].includes(({KERNEL_NAME_JS})())", timeout=timeout * 1000)
    except Exception:  # noqa: BLE001 -- then what the toolbar says is the answer
        pass
    return page.evaluate(KERNEL_NAME_JS)


def wait_status(page, status, timeout):
    page.wait_for_function(f"() => ({STATUS_JS})() === {json.dumps(status)}", timeout=timeout * 1000)


def run_notebook(browser, name, out):
    """Opens NAME through scripts/lab in the browser and runs it as a
    student does; returns its summary (dict). Raises Failure."""
    stem = Path(name).stem
    path = ROOT / "notebooks" / name
    # JupyterLab saves a running notebook by itself (every 2 minutes): the
    # clone's copy, outputs and typed answers included, is put back after.
    committed = path.read_bytes()
    t0 = time.time()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    summary = {"notebook": name, "problems": []}
    server = None
    try:
        server = Server([str(ROOT / "scripts" / "lab"), str(path)], out / f"{stem}-server.log")
        page.goto(server.url)
        page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=120_000)
        opened = time.time()
        kernel = wait_kernel_name(page)
        summary["kernel"] = kernel
        if kernel != KERNEL_DISPLAY:
            raise Failure(f"the notebook's kernel is {kernel!r}, not {KERNEL_DISPLAY!r}")
        wait_status(page, "idle", 180)
        summary["kernel idle after open (s)"] = round(time.time() - opened, 1)
        page.screenshot(path=str(out / f"{stem}-0-opened.png"))
        kinds = [c["cell_type"] for c in json.loads(committed)["cells"]]
        answers = solution_answers(name)
        # The first cell selected, in command mode: Shift+Enter from there on.
        page.locator(f'{PANEL} .jp-Cell[data-windowed-list-index="0"]').click()
        page.keyboard.press("Escape")
        times, figures = [], 0
        for i, kind in enumerate(kinds):
            active = page.locator(f"{PANEL} .jp-Cell.jp-mod-active")
            at = int(active.get_attribute("data-windowed-list-index"))
            if at != i:
                raise Failure(f"cell {i} should be the selected one after Shift+Enter, cell {at} is")
            if i in answers:
                type_answer(page, i, answers[i])
            start = time.time()
            page.keyboard.press("Shift+Enter")
            if kind != "code":
                continue
            page.wait_for_function(
                f"() => {{ const c = ({CELL_JS})({i}); return c && /^\\[\\d+\\]/.test(c.prompt); }}",
                timeout=CELL_TIMEOUT * 1000)
            wait_status(page, "idle", CELL_TIMEOUT)
            times.append(time.time() - start)
            cell = page.evaluate(CELL_JS, i)
            for k, im in enumerate(cell["images"]):
                figures += 1
                if not im["complete"] or im["width"] < 100 or im["height"] < 100:
                    summary["problems"].append(f"cell {i}: figure {k + 1} not shown ({im})")
                shot = page.locator(f'{PANEL} .jp-Cell[data-windowed-list-index="{i}"] '
                                    f'.jp-OutputArea-output img').nth(k)
                shot.screenshot(path=str(out / f"{stem}-fig{figures:02d}-cell{i}.png"))
            if name == "saliency_lab.ipynb" and scores_in(cell["text"]) is not None:
                summary["scores"] = scores_in(cell["text"])
        time.sleep(2)  # evcxr's stderr may arrive after the cell's reply
        for i in range(len(kinds)):
            cell = page.evaluate(CELL_JS, i)
            if cell is None:
                summary["problems"].append(f"cell {i} is not on the page")
            for err in cell["stderr"] if cell else []:
                summary["problems"].append(f"cell {i}: stderr or error: {err[:400]}")
        page.screenshot(path=str(out / f"{stem}-9-end.png"))
        want = EXPECTED_FIGURES.get(SOLUTIONS.get(name, name))
        summary.update({"code cells": len(times), "figures": figures, "whole run (s)": round(time.time() - t0),
                        "median cell (s)": round(sorted(times)[len(times) // 2], 2) if times else None,
                        "slowest cell (s)": round(max(times), 1) if times else None})
        if want is not None and figures != want:
            summary["problems"].append(f"{figures} figures shown, expected {want}")
        if name == "saliency_lab.ipynb":
            scores = summary.get("scores")
            if scores is None:
                summary["problems"].append("the correct-class scores were not printed")
            elif max(abs(a - b) for a, b in zip(scores, LAB_SCORES)) > SCORE_TOL:
                summary["problems"].append(f"the correct-class scores are off the lab's by more than {SCORE_TOL}")
        summary["problems"] += [f"the server logged: {l[:300]}" for l in server.errors()]
    except Exception as e:  # noqa: BLE001 -- a timeout or a missing element is this notebook's failure
        page.screenshot(path=str(out / f"{stem}-failed.png"))
        summary["problems"].append(f"{type(e).__name__}: {str(e)[:1500]}")
    finally:
        page.close()
        if server is not None:
            server.stop()
        if path.read_bytes() != committed:
            path.write_bytes(committed)
    summary.pop("scores", None)
    return summary


def own_jupyter(browser, out):
    """A JupyterLab of the student's own, in a venv of its own, with none of
    set-up's environment: it lists the kernel set-up registered for the
    user, and a notebook started on it runs a cell."""
    summary = {"notebook": "a plain JupyterLab of the student's own", "problems": []}
    venv = lab_home() / "browser" / "own-jupyter"
    python3 = os.environ.get("SALIENCY_LAB_PYTHON3", "python3")
    jupyter = venv / "bin" / "jupyter"
    if not jupyter.exists():
        subprocess.run([python3, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "jupyterlab"],
                       check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER_", "SALIENCY_LAB_", "LD_LIBRARY_PATH", "LIBTORCH", "EVCXR", "CARGO_TARGET"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    listed = json.loads(subprocess.run([str(jupyter), "kernelspec", "list", "--json"], env=env, check=True,
                                       capture_output=True, text=True).stdout)["kernelspecs"]
    launcher = str(lab_home() / "kernel" / "launch")
    ours = [(n, k) for n, k in listed.items() if k["spec"]["argv"][:1] == [launcher]]
    if not ours:
        summary["problems"].append(f"`jupyter kernelspec list` of a plain JupyterLab does not list {launcher}: "
                                   f"{sorted(listed)}")
        return summary
    name, spec = ours[0]
    display = spec["spec"]["display_name"]
    summary["kernel"] = f"{name}: {display}"
    work = lab_home() / "browser" / "own-jupyter-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    argv = [str(jupyter), "lab", f"--ServerApp.root_dir={work}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    server = Server(argv, out / "own-jupyter-server.log", cwd=work, env=env, what="a plain `jupyter lab`")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(server.url)
        card = page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{display}"]')
        card.wait_for(timeout=120_000)
        page.screenshot(path=str(out / "own-jupyter-launcher.png"))
        card.click()
        page.wait_for_selector(f"{PANEL} .cm-content", timeout=60_000)
        shown = wait_kernel_name(page)
        if shown != display:
            raise Failure(f"the new notebook's toolbar names the kernel {shown!r}, not {display!r}")
        wait_status(page, "idle", 180)
        type_answer(page, 0, 'println!("{}", 6 * 7);')
        page.locator(f'{PANEL} .jp-Cell[data-windowed-list-index="0"] .cm-content').click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(f"() => {{ const c = ({CELL_JS})(0); return c && c.text.includes('42'); }}",
                                   timeout=CELL_TIMEOUT * 1000)
        except Exception as e:  # noqa: BLE001 -- then say what the cell shows
            raise Failure(f"the cell did not print 42 in {CELL_TIMEOUT} s; it shows "
                          f"{page.evaluate(CELL_JS, 0)}, the kernel is {page.evaluate(STATUS_JS)!r}") from e
        page.screenshot(path=str(out / "own-jupyter-cell.png"))
        summary["problems"] += [f"the server logged: {l[:300]}" for l in server.errors()]
    except Exception as e:  # noqa: BLE001
        page.screenshot(path=str(out / "own-jupyter-failed.png"))
        summary["problems"].append(f"{type(e).__name__}: {str(e)[:1500]}")
        summary["problems"] += [f"the server logged: {l[:300]}" for l in server.errors()]
        log = lab_home() / "kernel" / "kernel.log"
        if log.exists():
            summary["problems"].append("the kernel's log ends: " + log.read_text(errors="replace")[-1500:])
    finally:
        page.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return summary


REPORT_JS = """() => ({
  tests: Array.from(document.querySelectorAll('#tests tr[data-test]')).map(r => ({
    test: r.dataset.test, passed: +r.dataset.passed, graded: +r.dataset.graded, shown: r.innerText})),
  marks: Array.from(document.querySelectorAll('#marks tr[data-mark]')).map(r => [+r.dataset.mark, +r.dataset.count]),
  students: Array.from(document.querySelectorAll('#students tr[data-student]')).map(r => r.dataset.student),
  histogram: (() => { const im = document.querySelector('#histogram');
                      return im ? {complete: im.complete, width: im.naturalWidth} : null; })(),
  links: Array.from(document.querySelectorAll('#students a')).map(a => a.href),
  scripts: document.querySelectorAll('script').length,
})"""


def class_report(browser, out):
    """The class report as an instructor opens it: the grading test's
    (`$CARGO_TARGET_DIR/tmp/grading`, from the notebooks tier), or, where
    that has not run, one graded here from three kept submissions. What the
    page shows (pass rate per test, the marks, every student, the histogram
    drawn, a feedback page reached by its link) against the CSV."""
    import csv
    summary = {"notebook": "class report", "problems": []}
    target = Path(os.environ.get("CARGO_TARGET_DIR", lab_home() / "target"))
    folder = target / "tmp" / "grading"
    if not (folder / "report" / "index.html").is_file() or not (folder / "grades.csv").is_file():
        folder = out / "report-class"
        subs = folder / "submissions"
        shutil.rmtree(folder, ignore_errors=True)
        subs.mkdir(parents=True)
        for name in ("correct", "no_abs", "one_sample"):
            shutil.copy(ROOT / "crate" / "tests" / "submissions" / f"{name}.ipynb", subs)
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "grade.py"), str(subs), "--out",
                               str(folder / "grades.csv"), "--feedback", str(folder / "feedback")],
                              capture_output=True, text=True)
        if done.returncode != 0:
            summary["problems"].append(f"grade.py failed: {done.stderr[-1500:]}")
            return summary
    rows = list(csv.DictReader(open(folder / "grades.csv", newline="")))
    tests = [h for h in rows[0] if h.startswith("test")] if rows else []
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    try:
        page.goto((folder / "report" / "index.html").resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(out / "class-report.png"), full_page=True)
        shown = page.evaluate(REPORT_JS)
        graded = [r for r in rows if r["status"] != "unreadable"]
        want = {t: (sum(1 for r in graded if float(r[t]) > 0), len(graded)) for t in tests}
        got = {t["test"]: (t["passed"], t["graded"]) for t in shown["tests"]}
        if got != want:
            summary["problems"].append(f"pass rates shown {got}, the CSV's {want}")
        for t in shown["tests"]:
            rate = f"{100 * t['passed'] / t['graded']:.0f}%" if t["graded"] else "0%"
            if rate not in t["shown"]:
                summary["problems"].append(f"{t['test']}: the row does not show {rate}: {t['shown'][:200]!r}")
        marks = {}
        for r in graded:
            marks[round(float(r["final"]), 4)] = marks.get(round(float(r["final"]), 4), 0) + 1
        if dict((m, c) for m, c in shown["marks"]) != marks:
            summary["problems"].append(f"marks shown {shown['marks']}, the CSV's {sorted(marks.items())}")
        # (The CSV quotes a name that a spreadsheet would run as a formula.)
        names = [r["student"][1:] if r["student"][:1] == "'" and r["student"][1:2] in ("=", "+", "-", "@", "\t", "\r")
                 else r["student"] for r in rows]
        if sorted(shown["students"]) != sorted(names):
            summary["problems"].append(f"students shown {shown['students']}, the CSV's {names}")
        if not shown["histogram"] or not shown["histogram"]["complete"] or shown["histogram"]["width"] < 100:
            summary["problems"].append(f"the marks' histogram is not shown: {shown['histogram']}")
        if shown["scripts"]:
            summary["problems"].append("the report has scripts")
        if shown["links"]:
            page.goto(shown["links"][0])
            page.wait_for_load_state("load")
            page.screenshot(path=str(out / "feedback-page.png"), full_page=True)
            text = page.inner_text("body")
            if "Score:" not in text or page.evaluate("document.querySelectorAll('script').length"):
                summary["problems"].append(f"the first feedback page shows {text[:300]!r}")
        else:
            summary["problems"].append("no link to a feedback page")
        summary["students"] = len(shown["students"])
    except Exception as e:  # noqa: BLE001 (said in the summary)
        summary["problems"].append(f"{type(e).__name__}: {str(e)[:1500]}")
    finally:
        page.close()
    return summary


def chromium():
    found = os.environ.get("SALIENCY_LAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        sys.exit("browser_test.py: Debian's chromium is not installed (apt install chromium; scripts/test browser "
                 "installs it as root), or set SALIENCY_LAB_CHROMIUM to a Chromium binary")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="*", help=f"any of {', '.join([*NOTEBOOKS, 'own-jupyter', 'report'])} (default: all)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", lab_home() / "target"))
                    / "tmp" / "browser")
    args = ap.parse_args()
    choices = [*NOTEBOOKS, "own-jupyter", "report"]
    what = args.what or choices
    unknown = [w for w in what if w not in choices]
    if unknown:
        ap.error(f"unknown {unknown}: choose from {', '.join(choices)}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("browser_test.py: Playwright is not installed in set-up's venv: run scripts/setup")
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.png"):
        old.unlink()
    summaries = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        for w in what:
            print(f"==> browser: {w} ({len(summaries) + 1}/{len(what)})", flush=True)
            if w == "own-jupyter":
                s = own_jupyter(browser, args.out)
            elif w == "report":
                s = class_report(browser, args.out)
            else:
                s = run_notebook(browser, NOTEBOOKS[w], args.out)
            summaries.append(s)
            print(json.dumps(s, indent=1), flush=True)
        browser.close()
    lines = ["| notebook | kernel | problems | details |", "|---|---|---|---|"]
    for s in summaries:
        details = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("notebook", "kernel", "problems"))
        lines.append(f"| {s['notebook']} | {s.get('kernel', '-')} | {len(s['problems'])} | {details} |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"screenshots: {args.out}")
    failed = [s for s in summaries if s["problems"]]
    for s in failed:
        print(f"FAILED: {s['notebook']}:\n  - " + "\n  - ".join(s["problems"]), file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
