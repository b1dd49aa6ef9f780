# nbgrader configuration for the saliency lab's Rust (evcxr) notebooks.
#
# Copy this file into your nbgrader course directory (or pass it with
# --config). The homework's solution notebook, notebooks/homework_smoothgrad.ipynb,
# goes to source/smoothgrad/; `nbgrader generate_assignment smoothgrad` then
# makes the same student version as scripts/make_student.py.
c = get_config()  # noqa: F821 (provided by nbgrader)

# nbgrader has no stub for Rust: `todo!()` compiles wherever a value is due
# and panics with "not yet implemented" when run.
c.ClearSolutions.code_stub = {
    "rust": "// YOUR CODE HERE\ntodo!()",
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
# `// BEGIN SOLUTION` and `// BEGIN HIDDEN TESTS` match nbgrader's default
# delimiters (they are found anywhere in a line).

# A Rust kernel compiles every cell, and the first cell (`:dep` on the crate)
# builds tch and libtorch's bindings: minutes when evcxr's cache is cold,
# seconds after scripts/setup has warmed it. nbgrader's 30 s default is too
# short; a cell that runs away is interrupted (evcxr restarts its worker).
c.Execute.timeout = 900
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True

# evcxr answers a failed cell with status "error" but no `ename`, which
# nbgrader's Execute expects: fill the reply in before nbgrader reads it.
from nbconvert.preprocessors import ClearMetadataPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties, CheckCellMetadata, Execute, IgnorePattern, LimitOutput, SaveAutoGrades,
)


import os  # noqa: E402

# The notebooks bring in the crate with `:dep saliency-lab = { path = "../crate" }`,
# relative to the kernel's working directory: run the kernel in the project's
# notebooks/ folder, wherever nbgrader keeps the submission. The project is
# $SALIENCY_LAB_ROOT (scripts/env.sh sets it), else the folder above this file.
LAB_ROOT = os.environ.get("SALIENCY_LAB_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RustExecute(Execute):
    def preprocess(self, nb, resources=None, km=None):
        resources = dict(resources or {})
        resources["metadata"] = dict(resources.get("metadata", {}), path=os.path.join(LAB_ROOT, "notebooks"))
        return super().preprocess(nb, resources, km)

    def on_cell_executed(self, **kwargs):
        content = kwargs["execute_reply"]["content"]
        if content.get("status") == "error":
            content.setdefault("ename", "Error")
            content.setdefault("evalue", "the cell failed")
            content.setdefault("traceback", [])
        return super().on_cell_executed(**kwargs)


c.Autograde.autograde_preprocessors = [
    RustExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
    AssignLatePenalties, CheckCellMetadata,
]
c.RustExecute.timeout = 900
c.RustExecute.startup_timeout = 120
c.RustExecute.interrupt_on_timeout = True
