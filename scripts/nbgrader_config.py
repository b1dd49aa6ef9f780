# nbgrader configuration for the saliency lab's Rust (evcxr) notebooks.
#
# Copy this file into your nbgrader course directory (or pass it with
# --config). A homework's solution notebook (notebooks/homework_smoothgrad.ipynb,
# homework_deletion.ipynb, homework_fooling.ipynb) goes to source/ASSIGNMENT/,
# e.g. source/smoothgrad/; `nbgrader generate_assignment smoothgrad` then
# makes the same student version as scripts/make_student.py, and
# `nbgrader autograde smoothgrad` grades each submission as scripts/grade.py
# does: in a sandbox of its own, with each test's verdict decided by the
# grader's own kernel on the values the submission handed in (README,
# "Homework and grading": what holds under nbgrader and what only under
# grade.py).
import os
import sys

c = get_config()  # noqa: F821 (provided by nbgrader)

# The project is $SALIENCY_LAB_ROOT (scripts/env.sh sets it), else the folder
# above this file's.
LAB_ROOT = os.environ.get("SALIENCY_LAB_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(LAB_ROOT, "scripts"))

# nbgrader has no stub for Rust: `todo!()` compiles wherever a value is due
# and panics with "not yet implemented" when run (make_student.py's, which
# runs the same preprocessors).
from make_student import CODE_STUB  # noqa: E402

c.ClearSolutions.code_stub = {"rust": CODE_STUB, "python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# `// BEGIN SOLUTION` and `// BEGIN HIDDEN TESTS` match nbgrader's default
# delimiters (they are found anywhere in a line).

from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.coursedir import CourseDirectory  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, NbGraderPreprocessor, SaveAutoGrades,
)
from nbformat import NotebookNode  # noqa: E402


class SandboxedGrading(NbGraderPreprocessor):
    """In place of nbgrader's Execute: grades the notebook with
    scripts/grade.py's grader (the instructor's source notebook as the
    solution: its set-up, tests and hidden tests; the submission's answer
    cells and added cells in a sandbox of its own), then gives each test cell
    one output that nbgrader scores: a line saying it passed, or an error
    with the check's message. Nothing the submission printed reaches a test
    cell's outputs, so no output of the student's code can pass or fail a
    test; a test passes only on the grader's verdict."""

    graders = {}

    def grader_for(self, resources):
        import grade
        meta = resources["nbgrader"]
        course = CourseDirectory(config=self.config)
        source = os.path.join(course.format_path(course.source_directory, ".", meta["assignment"]),
                              meta["notebook"] + ".ipynb")
        if source not in self.graders:
            import atexit
            self.graders[source] = g = grade.Grader(source, 1, None, 900, unsafe=False, log=self.log.info)
            atexit.register(g.close)
        return self.graders[source]

    def preprocess(self, nb, resources):
        grader = self.grader_for(resources)
        import secrets
        seed = secrets.randbits(62)
        g = grader.grade_notebook(nb, grader.limits, slot=0, seed=seed)
        status, results, note = g.status, g.results, g.note
        self.log.info("graded in a sandbox (hidden tests' inputs: seed %d): %s%s", seed, status,
                      f" ({note})" if note else "")
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            meta = cell.metadata.get("nbgrader", {})
            cell.outputs = []
            if meta.get("grade") and not meta.get("solution"):
                r = results.get(meta.get("grade_id"), {"passed": False, "message": f"not graded ({status})"})
                if r["passed"]:
                    cell.outputs = [NotebookNode(output_type="stream", name="stdout",
                                                 text="passed (checked by the grader)\n")]
                else:
                    cell.outputs = [NotebookNode(output_type="error", ename="Failed", evalue=r["message"],
                                                 traceback=[f"failed: {r['message']}"])]
        return nb, resources


c.Autograde.autograde_preprocessors = [
    SandboxedGrading, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
    AssignLatePenalties, CheckCellMetadata,
]
