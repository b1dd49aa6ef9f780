"""The class report and the feedback pages: what they show, escaped."""
import sys
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import report  # noqa: E402
from gradebook import Record  # noqa: E402

TESTS = [("test_a", 2), ("test_b", 1)]


class Rows(HTMLParser):
    """The data-* attributes of every element, in order."""

    def __init__(self):
        super().__init__()
        self.data, self.scripts, self.text = [], 0, []

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        d = {k: v for k, v in attrs if k.startswith("data-")}
        if d:
            self.data.append(d)

    def handle_data(self, data):
        self.text.append(data)


def parse(page):
    p = Rows()
    p.feed(page)
    return p


def records():
    def rec(name, passed, status="ok", message="image 0: correlation 0.71, needs > 0.9", **kw):
        res = {gid: {"passed": gid in passed, "message": "" if gid in passed else message, "new": gid == "test_b"}
               for gid, _ in TESTS}
        return Record(name, name.replace("<", "_"), status, res, seconds=12.0, **kw)
    return [rec("alice", ("test_a", "test_b")), rec("bob", ("test_a",)),
            rec("<script>alert(1)</script>", (), message="image 1: correlation 0.52, needs > 0.9"),
            Record("carol", "carol", "unreadable", note="a FIFO, not a notebook file")]


def test_the_class_report_shows_the_rates_the_marks_and_every_student_escaped():
    page = report.class_report("SmoothGrad", [("date", "today")], records(), TESTS, "../feedback",
                               histogram=b"\x89PNG...", pairs=[("alice", "bob", 0.93)], threshold=0.7)
    p = parse(page)
    assert p.scripts == 0 and "<script>alert" not in page
    tests = [d for d in p.data if "data-test" in d]
    assert tests == [{"data-test": "test_a", "data-passed": "2", "data-graded": "3"},
                     {"data-test": "test_b", "data-passed": "1", "data-graded": "3"}]
    marks = {d["data-mark"]: d["data-count"] for d in p.data if "data-mark" in d}
    assert marks == {"0": "1", "2": "1", "3": "1"}
    students = [d["data-student"] for d in p.data if "data-student" in d]
    assert students == ["alice", "bob", "<script>alert(1)</script>", "carol"]
    text = "".join(p.text)
    # The two failures of test_a are one message with other numbers.
    assert "2 x image 0: correlation 0.71" in text
    assert "alice" in text and "0.93" in text and "not a notebook" in text
    assert 'href="../feedback/bob.html"' in page


def test_a_feedback_page_shows_verdicts_and_figures_never_code():
    rec = records()[1]
    rec.figures = [("smooth_grad", "", b"\x89PNG\r\n")]
    rec.late_days, rec.penalty = 2, 0.2
    page = report.feedback_page("SmoothGrad", rec, TESTS, {"smooth_grad": "Task 1: SmoothGrad (4 points)"})
    p = parse(page)
    text = "".join(p.text)
    assert "Score: 2 / 3" in text and "20% off" in text and "1.6" in text
    assert "failed: image 0: correlation 0.71" in text
    assert "Task 1: SmoothGrad" in text and page.count("data:image/png;base64,") == 1
    assert p.scripts == 0
