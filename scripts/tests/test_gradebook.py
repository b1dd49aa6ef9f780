"""The gradebook's pure parts: records, late penalties, the regrading plan,
the CSV and the LMS files."""
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gradebook  # noqa: E402
from gradebook import Record  # noqa: E402

TESTS = [("test_a", 2), ("test_b", 1)]


def record(name="alice", passed=("test_a",), **kw):
    results = {gid: {"passed": gid in passed, "message": "" if gid in passed else "wrong",
                     "probe": "p-" + gid, "check": "c-" + gid} for gid, _ in TESTS}
    return Record(name, kw.pop("key", name), kw.pop("status", "ok"), results, seed=7, digest="d", **kw)


def test_marks_and_the_late_penalty():
    r = record()
    assert r.raw(TESTS) == 2
    r.penalty = 0.25
    assert r.final(TESTS) == 1.5
    table = gradebook.parse_penalties("10,20,50")
    assert table == [0.1, 0.2, 0.5]
    deadline = gradebook.parse_deadline("2026-12-01T12:00+00:00")
    assert gradebook.days_late(deadline - 5, deadline) == 0
    assert gradebook.days_late(deadline + 1, deadline) == 1
    assert gradebook.days_late(deadline + 86400, deadline) == 1
    assert gradebook.days_late(deadline + 86401, deadline) == 2
    assert [gradebook.penalty(d, table) for d in (0, 1, 2, 3, 9)] == [0.0, 0.1, 0.2, 0.5, 0.5]
    for bad in ("ten", "", "150"):
        try:
            gradebook.parse_penalties(bad)
            raise AssertionError(bad)
        except ValueError:
            pass


def test_the_submission_time_is_nbgraders_timestamp_else_the_files(tmp_path):
    nb = tmp_path / "alice" / "homework.ipynb"
    nb.parent.mkdir()
    nb.write_text("{}")
    assert abs(gradebook.submitted_at(nb) - nb.stat().st_mtime) < 1e-6
    (nb.parent / "timestamp.txt").write_text("2026-12-02 10:00:00.000000 UTC\n")
    assert gradebook.submitted_at(nb) == gradebook.parse_deadline("2026-12-02T10:00:00+00:00")
    (nb.parent / "timestamp.txt").write_text("2026-12-02T10:00:00+00:00")
    assert gradebook.submitted_at(nb) == gradebook.parse_deadline("2026-12-02T10:00:00+00:00")
    assert gradebook.submitted_at(None) is None


def test_the_plan_regrades_only_what_changed():
    digests = {gid: {"probe": "p-" + gid, "check": "c-" + gid} for gid, _ in TESTS}
    old = record()
    assert gradebook.plan(None, "d", digests, set()) == ("run", "new submission")
    assert gradebook.plan(old, "d", digests, set()) == ("keep", "")
    assert gradebook.plan(old, "other", digests, set())[0] == "run"
    assert gradebook.plan(old, "d", digests, {"alice"})[0] == "run"
    assert gradebook.plan(record(status="timeout"), "d", digests, set())[0] == "run"
    changed = {**digests, "test_b": {"probe": "p-test_b", "check": "new"}}
    assert gradebook.plan(old, "d", changed, set()) == ("check", ["test_b"])
    probe = {**digests, "test_a": {"probe": "new", "check": "c-test_a"}}
    assert gradebook.plan(old, "d", probe, set())[0] == "run"


def test_new_verdicts_are_marked(tmp_path):
    old = record()
    new = record(passed=("test_a", "test_b"))
    gradebook.mark_new(new, old)
    assert not new.results["test_a"]["new"] and new.results["test_b"]["new"]
    gradebook.save_store(tmp_path / "s.json", [new], "hw.ipynb", {})
    back = gradebook.load_store(tmp_path / "s.json")["alice"]
    assert back.results == new.results and back.seed == 7
    assert gradebook.load_store(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert gradebook.load_store(tmp_path / "bad.json") == {}


def test_the_csv_and_the_lms_files(tmp_path):
    rows = [record(), record("=HYPERLINK(1)", passed=(), key="x"), record("doejohn_LATE_4711_99_hw.ipynb", key="j")]
    rows[0].late_days, rows[0].penalty = 1, 0.1
    gradebook.write_csv(tmp_path / "g.csv", rows, TESTS)
    got = list(csv.DictReader(open(tmp_path / "g.csv")))
    assert [g["student"] for g in got] == ["alice", "'=HYPERLINK(1)", "doejohn_LATE_4711_99_hw.ipynb"]
    assert (got[0]["test_a"], got[0]["test_b"], got[0]["total"], got[0]["final"]) == ("2", "0", "2", "1.8")
    gradebook.write_lms("canvas", tmp_path / "c.csv", rows, TESTS, "SmoothGrad")
    canvas = list(csv.reader(open(tmp_path / "c.csv")))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "SmoothGrad"]
    assert canvas[1][0] == "Points Possible" and canvas[1][5] == "3"
    assert canvas[2] == ["alice", "", "", "alice", "", "1.8"]
    assert canvas[4][:2] == ["doejohn", "4711"]
    gradebook.write_lms("moodle", tmp_path / "m.csv", rows, TESTS, "SmoothGrad")
    moodle = list(csv.reader(open(tmp_path / "m.csv")))
    assert moodle[0] == ["Username", "SmoothGrad", "SmoothGrad: test_a", "SmoothGrad: test_b"]
    assert moodle[1] == ["alice", "1.8", "2", "0"]
