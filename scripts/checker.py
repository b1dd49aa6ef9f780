"""The grader's own kernel (grade.py): outside any sandbox, on set-up's full
crate, it defines every test's checks once and then checks each
submission's handed-in values with them. No code of a student's runs here:
it reads their values as data, checked and rewritten by handin.py first. A
check's message is rewritten for the student (`for_student`).
"""
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from handin import clean
from nbshared import ROOT, copy_build_folder, output_error

CHECKS_TIMEOUT = 600  # the first checks compute the references (SmoothGrad, RISE)


def for_student(message):
    """A check's message as the student reads it: an `assert_eq!`'s
    expected value (the reference's) left out; its own words, and the
    student's value, kept."""
    m = re.match(r"assertion `left [!=]= right` failed(?:: (?P<say>.*?))?\s+left: (?P<left>.*?)\s+right: .*$",
                 message, re.S)
    if m:
        say = (m.group("say") or "").strip() or "the value is not the one expected"
        return f"{say} (yours: {m.group('left').strip()[:200]})"
    return message

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
            errors.append(output_error(msg["msg_type"], msg["content"]))

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
                except Exception as e:  # noqa: BLE001 -- hung, died, or could not start
                    errors = f"{type(e).__name__}: {e}"
                found = {}
                if record.exists():
                    for line in record.read_text(errors="replace").split("\n"):
                        if not line:
                            continue
                        gid, status, message = (line.split("\t", 2) + ["", ""])[:3]
                        # One verdict per test: a second one is not an update.
                        found[gid] = ((False, "two verdicts for one test") if gid in found
                                      else (status == "pass", for_student(message)))
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
