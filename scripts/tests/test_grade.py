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
import grade  # noqa: E402
import handin  # noqa: E402
import make_student  # noqa: E402

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
    said = grade.for_student("assertion `left == right` failed: max over channels   left: [2.0]  right: [3.0]")
    assert said == "max over channels (yours: [2.0])" and "3.0" not in said
    assert grade.for_student("image 0: correlation 0.5") == "image 0: correlation 0.5"
    assert grade.failure_message("thread 'x' panicked at src/a.rs:1:2:\nthe noise is off\nnote: ...") == \
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
    subs = {s.name: s for s in grade.submissions_in(tmp_path, master)}
    assert set(subs) == {"alice (alice.ipynb)", "alice (alice/)", "fifo", "=cmd()", "evil?[2K", "link"}
    assert "FIFO" in subs["fifo"].why and "symbolic link" in subs["link"].why
    assert len({s.key for s in subs.values()}) == len(subs)
    assert all("/" not in s.key and "\x1b" not in s.key for s in subs.values())
    nb, why = grade.read_submission(subs["fifo"])
    assert nb is None and "FIFO" in why


def test_the_student_version_has_no_solution_and_no_hidden_test():
    nb = json.loads((ROOT / "notebooks" / "homework_smoothgrad.ipynb").read_text())
    text = json.dumps(make_student.student_version(nb))
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    assert "todo!()" in text
    assert make_student.dumps(make_student.student_version(nb)) == \
        (ROOT / "notebooks" / "homework_smoothgrad_student.ipynb").read_text()
