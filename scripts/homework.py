"""A homework's solution notebook read for grading, and the notebooks grading
builds from it. No I/O but what it is given: used by grade.py and by
nbgrader_config.py.

The solution notebook is nbgrader's single source: answers in cells marked
`solution`, tests in `grade` cells with `points`. A test cell has two parts
(crate/src/grading.rs): first what runs in the student's kernel, the
student's functions on the test's inputs, ending with `hand_in!(name: Type,
...)` lines naming the values to check; then the checks, which run in the
grader's own kernel on the values handed in. From it grading builds

- for each submission, the notebook its sandbox runs (`sandbox_notebook`):
  the set-up cells, the student's answers and added cells, and each test's
  first part as a *probe* (`grading::probe`, `grading::hand_in`), with the
  seed its inputs are drawn from this time. No check, no solution and no
  other cell of the solution notebook goes in;
- for the grader's kernel, one cell holding every test's checks, with its own
  run of the set-up code (`checker_cells`), and per submission one call of
  it (`checks_call`) on the values the submission handed in
  (`grading::handed_in`, `grading::check`).

A test's inputs may be drawn at random (`grading::draw`): the lines between
`// INPUTS` and `// END INPUTS` at the top of a test cell draw them, and run in
both kernels, before the probe and before the checks, with the same seed. They
run in the grader's kernel too, so they may not call the student's code (it
is not there: they would not compile).

The solution notebook's metadata may name features of the crate that its
submissions are graded without (`saliency_lab.withhold`: the crate's own
answer to the homework; crate/Cargo.toml's `package.metadata.grading`).
"""
import json
import re
from dataclasses import dataclass, field

from handin import VALUE_EXT
from nbshared import grader_meta, source_of

HAND_IN = re.compile(r"^\s*hand_in!\s*\((?P<args>.*)\)\s*;?\s*(//.*)?$")
HIDDEN = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
INPUTS = ("// INPUTS", "// END INPUTS")
ID = re.compile(r"^[A-Za-z0-9_.-]+$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")



class HomeworkError(ValueError):
    """The solution notebook does not follow the grading convention."""


@dataclass
class Test:
    id: str
    points: float
    probe: str
    check: str
    values: list = field(default_factory=list)  # [(name, Rust type)]
    inputs: str = ""  # drawn in both kernels


def split_args(text):
    """`a: Tensor, b: Vec<f64>` -> [("a", "Tensor"), ("b", "Vec<f64>")]."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "<(["
        depth -= ch in ">)]"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    out = []
    for p in parts:
        name, sep, ty = p.partition(":")
        name, ty = name.strip(), ty.strip()
        if not sep or not NAME.match(name) or not ty:
            raise HomeworkError(f"hand_in!({text}): each value as `name: Type`")
        ty = re.sub(r"\s+", "", ty)
        if ty not in VALUE_EXT:
            raise HomeworkError(f"hand_in!({text}): {ty} is not a type the grader takes ({', '.join(VALUE_EXT)})")
        out.append((name, ty))
    return out


def split_test(gid, source):
    """A test cell's source -> (input lines, probe lines, values, check lines)."""
    lines = [l for l in source.splitlines() if not any(h in l for h in HIDDEN)]
    inputs = []
    starts = [i for i, l in enumerate(lines) if l.strip().startswith(INPUTS[0]) and not l.strip().startswith(INPUTS[1])]
    if starts:
        ends = [i for i, l in enumerate(lines) if l.strip().startswith(INPUTS[1])]
        if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
            raise HomeworkError(f"test {gid}: one `{INPUTS[0]}` ... `{INPUTS[1]}` block, before the probe")
        inputs = lines[starts[0] + 1:ends[0]]
        lines = lines[:starts[0]] + lines[ends[0] + 1:]
    marks = [i for i, l in enumerate(lines) if HAND_IN.match(l)]
    if not marks:
        raise HomeworkError(f"test {gid} hands nothing in: end its first part with `hand_in!(name: Type)` "
                            "(its checks would otherwise run the student's code in the grader's kernel)")
    first, last = marks[0], marks[-1]
    for l in lines[first:last + 1]:
        s = l.strip()
        if s and not s.startswith("//") and not HAND_IN.match(l):
            raise HomeworkError(f"test {gid}: code between its hand_in! lines ({s!r}): the values are handed "
                                "in together, after the code that computes them and before the checks")
    values = []
    for i in marks:
        values += split_args(HAND_IN.match(lines[i]).group("args"))
    names = [n for n, _ in values]
    if len(set(names)) != len(names):
        raise HomeworkError(f"test {gid} hands in a name twice: {names}")
    return inputs, lines[:first], values, lines[last + 1:]


def rust_str(s):
    """A Rust string literal for `s` (ids, names and folders of the grader's own)."""
    if any(ord(c) < 0x20 for c in s):
        raise ValueError(f"control character in {s!r}")
    return json.dumps(s, ensure_ascii=False)


class Homework:
    """A solution notebook, checked against the grading convention."""

    def __init__(self, nb):
        self.nb = nb
        self.cells = nb.get("cells", [])
        meta = nb.get("metadata", {}).get("saliency_lab", {})
        self.withhold = list(meta.get("withhold", []))
        self.setup, self.setup_ids, self.answers, self.tests = [], [], [], []
        seen_answer = False
        for cell in self.cells:
            m = grader_meta(cell)
            gid = m.get("grade_id")
            if cell.get("cell_type") != "code":
                continue
            if m.get("solution") and m.get("grade"):
                raise HomeworkError(f"{gid}: a cell both answer and test (autograded answers are not supported)")
            if m.get("solution"):
                seen_answer = True
                self.answers.append(gid)
            elif m.get("grade"):
                if not gid or not ID.match(gid):
                    raise HomeworkError(f"test cell with grade_id {gid!r}: ids of letters, digits, _ . -")
                inputs, probe, values, check = split_test(gid, source_of(cell))
                points = m.get("points", 0)
                if not isinstance(points, (int, float)) or points < 0:
                    raise HomeworkError(f"test {gid}: points {points!r}")
                self.tests.append(Test(gid, points, "\n".join(probe), "\n".join(check), values, "\n".join(inputs)))
            elif not seen_answer:
                self.setup.append(source_of(cell))
                self.setup_ids.append(gid)
        if not self.setup or not source_of({"source": self.setup[0]}).lstrip().startswith(":dep"):
            raise HomeworkError("the first code cell must bring in the crate (`:dep saliency-lab = ...`)")
        if not self.tests:
            raise HomeworkError("no test cells (nbgrader `grade: true` with points)")
        if len({t.id for t in self.tests}) != len(self.tests):
            raise HomeworkError("two test cells share a grade_id")

    def locked_edits(self, submission):
        """The grade_ids of the solution's set-up cells whose source the
        submission changed: grading runs the solution's."""
        mine = {}
        for cell in submission.get("cells", []) if isinstance(submission, dict) else []:
            gid = grader_meta(cell).get("grade_id")
            if isinstance(cell, dict) and cell.get("cell_type") == "code" and gid and gid not in mine:
                mine[gid] = source_of(cell).strip()
        return [gid for gid, src in zip(self.setup_ids, self.setup)
                if gid in mine and mine[gid] != src.strip()]

    def points(self):
        return [(t.id, t.points) for t in self.tests]

    def test(self, gid):
        return next(t for t in self.tests if t.id == gid)

    def sandbox_notebook(self, submission, seeds):
        """The notebook a submission's sandbox runs: the set-up cells, the
        student's answer cells (matched by grade_id) and added code cells in
        their places, and each test's probe, its inputs drawn from
        `seeds[test id]`. Cells whose metadata claims a test's or a locked
        cell's id are not the student's to give: the solution's own stand in
        their places."""
        answers, extras, last, seen = {}, {}, None, set()
        known = {grader_meta(c).get("grade_id") for c in self.cells if c.get("cell_type") == "code"} - {None}
        cells = submission.get("cells", []) if isinstance(submission, dict) else []
        for cell in cells if isinstance(cells, list) else []:
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            gid = grader_meta(cell).get("grade_id")
            if gid in known and gid not in seen:  # the cell itself: the student's answer, or the solution's cell
                seen.add(gid)
                if gid in self.answers:
                    answers[gid] = source_of(cell)
                last = gid
            else:  # added by the student (a copy of a cell included)
                extras.setdefault(last, []).append(source_of(cell))
        # The set-up first, then the master's cells in order: answers, tests'
        # probes, and whatever the student added after each (after a cell the
        # grader does not run, such as a demonstration, in its place).
        cells = [dict(source=s, role="setup") for s in self.setup]
        cells += [dict(source=s, role="added", after=None) for s in extras.get(None, [])]
        for cell in self.cells:
            gid = grader_meta(cell).get("grade_id")
            if cell.get("cell_type") != "code" or gid is None:
                continue
            if gid in self.answers:
                cells.append(dict(source=answers.get(gid, ""), role="answer", id=gid))
            elif any(t.id == gid for t in self.tests):
                cells.append(dict(source=self.probe_cell(self.test(gid), seeds[gid]), role="test", id=gid))
            cells += [dict(source=s, role="added", after=gid) for s in extras.get(gid, [])]
        return notebook(self.nb, cells)

    @staticmethod
    def probe_cell(test, seed):
        tid = rust_str(test.id)
        # With the declared type: a value of another type is a compile error
        # the student can read, not a mystery in the grader.
        hand_ins = "".join(f"::saliency_lab::grading::hand_in::<{ty}>({tid}, {rust_str(n)}, &{n})?;\n"
                           for n, ty in test.values)
        # In braces: evcxr reads a cell's leading lines that start with `:` as its commands.
        return (f"{{\n::saliency_lab::grading::probe({tid}, {int(seed)}, || -> ::saliency_lab::grading::TestResult {{\n"
                f"{test.inputs}\n{test.probe}\n{hand_ins}Ok(())\n}});\n}}")

    def checker_cells(self):
        """The grader's kernel's cells: the set-up's evcxr commands (`:dep`),
        then one cell defining `__checks(folder, verdicts, tests)`, a closure
        that owns its own run of the set-up code (the model, the data) and
        runs the checks of the named tests (each with its seed: `(id,
        seed)`) on the values in `folder` (folder/<test>/<name>.<ext>),
        appending each verdict to the file `verdicts`. Compiled once; each
        submission is then one short call (`checks_call`)."""
        commands, code = [], []
        for source in self.setup:
            for line in source.splitlines():
                (commands if line.lstrip().startswith(":") and not code else code).append(line)
        parts = ["let __checks: Box<dyn Fn(&std::path::Path, &std::path::Path, &[(&str, u64)])> = {",
                 "\n".join(code),
                 "Box::new(move |__folder: &std::path::Path, __verdicts: &std::path::Path, __run: &[(&str, u64)]| {"]
        for t in self.tests:
            tid = rust_str(t.id)
            reads = "".join(f"let {n}: {ty} = ::saliency_lab::grading::handed_in(__folder, {tid}, {rust_str(n)})?;\n"
                            for n, ty in t.values)
            parts.append(f"if let Some(&(_, __seed)) = __run.iter().find(|(id, _)| *id == {tid}) {{\n"
                         f"::saliency_lab::grading::check(__verdicts, {tid}, __seed, || -> ::saliency_lab::grading::TestResult {{\n"
                         f"{t.inputs}\n{reads}{t.check}\nOk(())\n}});\n}}")
        parts.append("})\n};")
        return ["\n".join(commands), "\n".join(parts)]

    @staticmethod
    def checks_call(folder, verdicts, tests, seeds):
        ids = ", ".join(f"({rust_str(t.id)}, {int(seeds[t.id])})" for t in tests)
        return f"__checks(std::path::Path::new({rust_str(str(folder))}), std::path::Path::new({rust_str(str(verdicts))}), &[{ids}]);"


def notebook(template, cells):
    """A notebook of code cells (with their role in metadata, for results)."""
    out = []
    for c in cells:
        meta = {"grading": {k: v for k, v in c.items() if k != "source"}}
        out.append({"cell_type": "code", "metadata": meta, "source": c["source"], "outputs": [],
                    "execution_count": None})
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": template.get("metadata", {}).get("kernelspec", {"name": "rust", "display_name": "Rust",
                                                                      "language": "rust"})},
        "cells": out}
