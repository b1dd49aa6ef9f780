#!/usr/bin/env python3
"""Makes the student version of a homework notebook from its solution version.

The solution notebook is the single source, in nbgrader's convention:
  - code between `// BEGIN SOLUTION` and `// END SOLUTION` (in cells whose
    nbgrader metadata has `solution: true`) becomes `// YOUR CODE HERE` +
    `todo!()`, a stub that compiles;
  - lines between `// BEGIN HIDDEN TESTS` and `// END HIDDEN TESTS` are removed;
  - outputs and execution counts are cleared; nbgrader metadata is kept.

This is what `nbgrader generate_assignment` does with nbgrader_config.py's
settings for the `rust` kernel language; this script needs no nbgrader.

  scripts/make_student.py                       every notebooks/homework_*.ipynb -> ..._student.ipynb
  scripts/make_student.py SOLUTION.ipynb        that one
  scripts/make_student.py --check               fail if a committed student version is stale

It also checks each solution against the grader's convention (homework.py):
each test cell hands in the values its checks read.
"""
import argparse
import copy
import json
import re
import sys
from pathlib import Path

from homework import Homework, HomeworkError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CODE_STUB = "// YOUR CODE HERE\ntodo!()"
TEXT_STUB = "YOUR ANSWER HERE"


def lines_of(cell):
    src = cell["source"]
    return ("".join(src) if isinstance(src, list) else src).split("\n")


def replace_solution(lines, stub):
    out, inside, replaced = [], False, False
    for line in lines:
        if "BEGIN SOLUTION" in line:
            if inside:
                raise ValueError("nested BEGIN SOLUTION")
            inside = replaced = True
            indent = re.match(r"\s*", line).group(0)
            out.extend(indent + s for s in stub.split("\n"))
        elif "END SOLUTION" in line:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("BEGIN SOLUTION without END SOLUTION")
    return out, replaced


def remove_hidden(lines):
    out, inside = [], False
    for line in lines:
        if "BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "END HIDDEN TESTS" in line:
            inside = False
        elif not inside:
            out.append(line)
    return out


def student_version(nb):
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        grader = cell.get("metadata", {}).get("nbgrader", {})
        lines = lines_of(cell)
        if grader.get("solution"):
            lines, replaced = replace_solution(lines, CODE_STUB if cell["cell_type"] == "code" else TEXT_STUB)
            if not replaced:
                raise ValueError(f"solution cell {grader.get('grade_id')} has no BEGIN SOLUTION region")
        lines = remove_hidden(lines)
        cell["source"] = "\n".join(lines)
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
    return nb


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
