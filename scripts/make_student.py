#!/usr/bin/env python3
"""Makes the student version of a homework notebook from its solution version.

The solution notebook is the single source, in nbgrader's convention:
  - code between `// BEGIN SOLUTION` and `// END SOLUTION` (in cells whose
    nbgrader metadata has `solution: true`) becomes `// YOUR CODE HERE` +
    `todo!()`, a stub that compiles;
  - lines between `// BEGIN HIDDEN TESTS` and `// END HIDDEN TESTS` are removed;
  - outputs and execution counts are cleared; nbgrader metadata is kept.

These are nbgrader's own preprocessors (ClearSolutions with the `rust`
stub of nbgrader_config.py, ClearHiddenTests, ClearOutput), run without a
course directory: `nbgrader generate_assignment` makes the same notebook
(crate/tests/notebooks.rs checks it).

  scripts/make_student.py                       every notebooks/homework_*.ipynb -> ..._student.ipynb
  scripts/make_student.py SOLUTION.ipynb        that one
  scripts/make_student.py --check               fail if a committed student version is stale

It also checks each solution against the grader's convention (homework.py):
each test cell hands in the values its checks read.
"""
import argparse
import copy
import json
import sys
from pathlib import Path

from homework import Homework, HomeworkError
from nbshared import ROOT

NOTEBOOKS = ROOT / "notebooks"
CODE_STUB = "// YOUR CODE HERE\ntodo!()"
TEXT_STUB = "YOUR ANSWER HERE"


def student_version(nb):
    """The student version of a solution notebook (a dict), through
    nbgrader's own preprocessors, as `generate_assignment` runs them:
    ClearSolutions (with the Rust stub), ClearHiddenTests, ClearOutput."""
    import nbformat
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions
    node = nbformat.from_dict(copy.deepcopy(nb))
    resources = {}
    for step in (ClearSolutions(code_stub={"rust": CODE_STUB}, text_stub=TEXT_STUB), ClearHiddenTests(),
                 ClearOutput()):
        node, resources = step.preprocess(node, resources)
    return json.loads(json.dumps(node))


def dumps(nb):
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("solution", nargs="*", type=Path)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    solutions = args.solution or sorted(p for p in NOTEBOOKS.glob("homework_*.ipynb") if not p.stem.endswith("_student"))
    stale = []
    for solution in solutions:
        target = solution.with_name(solution.stem + "_student.ipynb")
        nb = json.loads(solution.read_text())
        try:  # the grader's convention: each test hands in what its checks read
            Homework(nb)
        except HomeworkError as e:
            sys.exit(f"{solution.name}: {e}")
        text = dumps(student_version(nb))
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
            else:
                print(f"{target.name} is up to date")
            continue
        target.write_text(text)
        print(f"wrote {target}")
    if stale:
        sys.exit(f"stale: {', '.join(stale)}: run scripts/make_student.py")


if __name__ == "__main__":
    main()
