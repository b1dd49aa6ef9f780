"""The grader's pure functions: hand-in canonicalisation and the collector's
rules, names and files of a submissions folder, the student version, the
messages a student reads."""
import base64
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import checker  # noqa: E402
import grade  # noqa: E402
import handin  # noqa: E402
import make_student  # noqa: E402
import report  # noqa: E402
import sandbox_worker  # noqa: E402
import submissions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent


def npy(a):
    f = io.BytesIO()
    np.save(f, a, allow_pickle=False)
    return f.getvalue()


def test_canonical_keeps_numbers_and_refuses_the_rest(tmp_path):
    assert handin.canonical(npy(np.arange(6, dtype=np.float16).reshape(2, 3)), "npy", tmp_path / "a.npy") is None
    back = np.load(tmp_path / "a.npy")
    assert back.dtype == np.float32 and back.shape == (2, 3)
    # Objects, a header that lies about its size, and unknown kinds are refused.
    f = io.BytesIO()
    np.save(f, np.array([{"x": 1}], dtype=object), allow_pickle=True)  # a pickle inside
    assert "unreadable" in handin.canonical(f.getvalue(), "npy", tmp_path / "b.npy")
    lying = npy(np.zeros(4, dtype=np.float32))[:-4]
    assert "unreadable" in handin.canonical(lying, "npy", tmp_path / "c.npy")
    assert handin.canonical(b"x", "exe", tmp_path / "d.exe") == "a .exe file"
    assert "unreadable" in handin.canonical(b"\xff\xfe", "txt", tmp_path / "e.txt")
    assert "unreadable" in handin.canonical(b'{"grid": NaN}', "json", tmp_path / "f.json")


def test_records_are_taken_only_in_their_own_cell_once():
    line = handin.MARK + json.dumps({"test": "t", "name": "g", "ext": "npy",
                                     "data": base64.b64encode(npy(np.zeros(2))).decode()})
    [(rec, why)] = handin.records_in("before\n" + line + "\nafter")
    assert why is None and rec["test"] == "t"
    assert handin.records_in(handin.MARK + "{not json")[0] == (None, "a hand-in line that is not JSON")
    assert handin.without_records("a\n" + line + "\nb") == "a\nb"
    h = handin.HandIns(["t", "u"])
    h.take(rec, "t", True)
    h.take(rec, "t", True)  # twice: tampering
    h.take(dict(rec, test="u"), None, False)  # outside any test's cell: tampering
    report = handin.decode_report(h.report(), ["t", "u"])
    assert report["t"][2] and report["u"][2]


def test_for_student_keeps_the_words_and_the_students_value_not_the_reference():
    said = checker.for_student("assertion `left == right` failed: max over channels   left: [2.0]  right: [3.0]")
    assert said == "max over channels (yours: [2.0])" and "3.0" not in said
    assert checker.for_student("image 0: correlation 0.5") == "image 0: correlation 0.5"
    assert checker.failure_message("thread 'x' panicked at src/a.rs:1:2:\nthe noise is off\nnote: ...") == \
        "the noise is off"


def test_a_submissions_folder_is_data(tmp_path):
    master = ROOT / "notebooks" / "homework_smoothgrad.ipynb"
    (tmp_path / "alice.ipynb").write_text("{}")
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "homework_smoothgrad.ipynb").write_text("{}")
    os.mkfifo(tmp_path / "fifo.ipynb")
    (tmp_path / "=cmd().ipynb").write_text("{}")
    (tmp_path / "evil\x1b[2K.ipynb").write_text("{}")
    os.symlink(master, tmp_path / "link.ipynb")
    subs = {s.name: s for s in submissions.submissions_in(tmp_path, master)}
    assert set(subs) == {"alice (alice.ipynb)", "alice (alice/)", "fifo", "=cmd()", "evil?[2K", "link"}
    assert "FIFO" in subs["fifo"].why and "symbolic link" in subs["link"].why
    assert len({s.key for s in subs.values()}) == len(subs)
    assert all("/" not in s.key and "\x1b" not in s.key for s in subs.values())
    nb, why = submissions.read_submission(subs["fifo"])
    assert nb is None and "FIFO" in why


def test_the_student_version_has_no_solution_and_no_hidden_test():
    nb = json.loads((ROOT / "notebooks" / "homework_smoothgrad.ipynb").read_text())
    text = json.dumps(make_student.student_version(nb))
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    assert "todo!()" in text
    assert make_student.dumps(make_student.student_version(nb)) == \
        (ROOT / "notebooks" / "homework_smoothgrad_student.ipynb").read_text()


def test_the_collectors_report_is_read_as_data():
    assert sandbox_worker.read_report("not a report", ["t"]) is None
    assert sandbox_worker.read_report({"cells": ["a cell that is a string"]}, ["t"]) is None
    read = sandbox_worker.read_report({"cells": [{"role": 3, "errors": "bad\x1b[2Jline\u2028", "seconds": "1",
                                                  "pngs": ["a", 1, "b", "c", "d"]}],
                                       "error": "x" * 1000, "hand_in": None}, ["t"])
    [cell] = read["cells"]
    assert cell["role"] == "" and cell["seconds"] is None and cell["errors"] == "bad?[2Jline?"
    assert cell["pngs"] == ["a", "b"] and len(read["error"]) == 300


def test_what_a_sandbox_prints_is_made_safe_and_figures_are_only_pixels():
    assert handin.clean("a\tb\nc\x07\ud800") == "a\tb\nc??"
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGBA", (3, 2), (255, 0, 0, 128)).save(out, "PNG", pnginfo=None)
    png = handin.safe_png(base64.b64encode(out.getvalue()).decode())
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).mode == "RGB"
    assert handin.safe_png("not base64!") is None
    assert handin.safe_png(base64.b64encode(b"GIF89a").decode()) is None


def test_the_feedback_text_says_each_tests_verdict():
    total, text = report.feedback_text("SmoothGrad", "alice", [("a", 1.0), ("b", 2.0), ("c", 1.0)],
                                       {"a": {"passed": True, "message": ""},
                                        "b": {"passed": False, "message": "off\x1b[31m"}},
                                       "timeout", "", False, seed=7)
    assert total == 1.0
    assert "Score: 1 / 4" in text and "--seed 7" in text
    assert "a (1/1): passed" in text and "b (0/2): failed: off?[31m" in text and "c (0/1): not run (timeout)" in text


def test_each_test_draws_its_own_seed_from_the_submissions():
    seeds = grade.test_seeds(7, ["a", "b"])
    assert seeds == grade.test_seeds(7, ["b", "a"]) and seeds["a"] != seeds["b"]
    assert seeds != grade.test_seeds(8, ["a", "b"]) and all(0 <= v < 16 ** 15 for v in seeds.values())
