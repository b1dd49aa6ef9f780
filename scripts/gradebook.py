"""The gradebook of a grading run (grade.py): one record per student, the
CSV, the files an LMS imports, late penalties, and the store a later run
regrades from. No I/O but the files it is asked to write or read.

The store (`GRADES.grading/store.json` beside `GRADES.csv`, with each
submission's handed-in values and figures) keeps every verdict with the
digests of what decided it: the test's cell in the solution notebook (its
probe and inputs, which run in the sandbox; its hidden checks, which run in
the grader's kernel), the set-up cells, and the crate as graded. `grade.py
--regrade` grades again only a submission whose notebook changed, one whose
tests' probes changed, one that did not finish, or the students named with
`--student`; where only a test's checks changed it checks the values the
notebook handed in last time again, without running it. Each keeps its
seed, so a test draws the same inputs, and a verdict is marked new only if
it changed.
"""
import csv
import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

STORE_FORMAT = 1
# Canvas names each file of a bulk download `name[_LATE]_userid_submissionid_file`.
CANVAS_NAME = re.compile(r"^(?P<name>[^_]+)(?P<late>_LATE)?_(?P<user>\d+)_(?P<sub>\d+)_")


@dataclass
class Record:
    """One student's row: `results` {test id: {"passed", "message", "digest",
    "new"}}; `figures` [(answer id, task title, PNG bytes)] (not stored);
    `graded` false where the verdicts were kept from the store."""
    name: str
    key: str
    status: str
    results: dict = field(default_factory=dict)
    note: str = ""
    seed: int = None
    seconds: float = None
    digest: str = ""
    submitted: float = None
    late_days: int = 0
    penalty: float = 0.0
    graded: bool = True
    figures: list = field(default_factory=list)

    def raw(self, tests):
        return sum(pts for gid, pts in tests if self.results.get(gid, {}).get("passed"))

    def final(self, tests):
        return round(self.raw(tests) * (1.0 - self.penalty), 4)

    def stored(self):
        d = asdict(self)
        d.pop("figures")
        return d


def test_digests(hw, crate):
    """Each test's digests: `probe`, of what runs in the sandbox (its inputs
    and probe, the values it hands in, the set-up cells, `crate`: the
    crate's digest); `check`, of what decides in the grader's kernel (its
    checks, and the same set-up and crate)."""
    setup = "\n".join(hw.setup)
    h = lambda *parts: hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]  # noqa: E731
    return {t.id: {"probe": h(t.inputs, t.probe, t.values, setup, crate), "check": h(t.inputs, t.check, setup, crate)}
            for t in hw.tests}


def submission_digest(nb):
    return hashlib.sha256(json.dumps(nb, sort_keys=True).encode()).hexdigest()[:16]


def load_store(path):
    """{key: Record} of an earlier run's store; {} where there is none."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if data.get("format") != STORE_FORMAT:
        return {}
    out = {}
    for key, d in data.get("students", {}).items():
        try:
            out[key] = Record(**{k: v for k, v in d.items() if k in Record.__dataclass_fields__})
        except TypeError:
            continue
    return out


def save_store(path, records, solution, digests):
    data = {"format": STORE_FORMAT, "solution": solution, "tests": digests,
            "students": {r.key: r.stored() for r in records}}
    Path(path).write_text(json.dumps(data, indent=1, sort_keys=True))


def plan(old, digest, digests, students):
    """What `--regrade` does with a student whose last record is `old`:
    ("run", why): grade the notebook again; ("check", [test ids]): check
    those tests again on the values the notebook handed in last time (only
    their checks changed); ("keep", ""): the stored verdicts stand."""
    if old is None:
        return "run", "new submission"
    if old.key in students or old.name in students:
        return "run", "asked for (--student)"
    if old.digest != digest:
        return "run", "the notebook changed"
    if old.status not in ("ok", "tampering"):
        return "run", f"last run: {old.status}"
    before = lambda gid, part: old.results.get(gid, {}).get(part)  # noqa: E731
    if any(before(gid, "probe") != d["probe"] for gid, d in digests.items()):
        return "run", "a test's probe changed"
    changed = [gid for gid, d in digests.items() if before(gid, "check") != d["check"]]
    return ("check", changed) if changed else ("keep", "")


def mark_new(record, old):
    """Marks the verdicts that differ from the stored ones (all where there
    was none)."""
    for gid, r in record.results.items():
        before = (old.results.get(gid) if old else None) or {}
        r["new"] = old is None or before.get("passed") != r.get("passed") or before.get("message") != r.get("message")


# -- late submissions ---------------------------------------------------------
def parse_deadline(text):
    """An ISO 8601 date and time (`2026-12-01T23:59`, a zone optional: local
    time where none is given) as POSIX seconds."""
    t = dt.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.astimezone()
    return t.timestamp()


def parse_penalties(text):
    """The penalty table: percentages for the 1st, 2nd, ... day late
    (`10,20,50`; the last applies to every later day), as fractions."""
    try:
        table = [float(p) / 100.0 for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--late-penalty {text!r}: percentages separated by commas, e.g. 10,20,50,100") from None
    if not table or any(not 0.0 <= p <= 1.0 for p in table):
        raise ValueError(f"--late-penalty {text!r}: each between 0 and 100")
    return table


def days_late(submitted, deadline):
    """Whole days past the deadline, any part of a day counting as one."""
    if submitted is None or deadline is None or submitted <= deadline:
        return 0
    return int(-(-(submitted - deadline) // 86400))


def penalty(days, table):
    if days <= 0 or not table:
        return 0.0
    return table[min(days, len(table)) - 1]


def submitted_at(path):
    """When a submission came in: nbgrader's `timestamp.txt` beside the
    notebook (its first line, ISO or nbgrader's `%Y-%m-%d %H:%M:%S.%f %Z`),
    else the notebook's modification time."""
    if path is None:
        return None
    stamp = Path(path).parent / "timestamp.txt"
    try:
        if stamp.is_file() and not stamp.is_symlink():
            line = stamp.read_text(errors="replace").strip().splitlines()[0][:64]
            try:
                return parse_deadline(line)
            except ValueError:
                when, zone = line.rsplit(" ", 1)
                t = dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S.%f")
                t = t.replace(tzinfo=dt.timezone.utc) if zone == "UTC" else t.astimezone()
                return t.timestamp()
        return Path(path).lstat().st_mtime
    except (OSError, ValueError, IndexError):
        return None


# -- the CSV and the LMS files ------------------------------------------------
def csv_text(value):
    """A CSV cell that a spreadsheet shows as text, never runs as a formula
    (OWASP's advice: a cell starting with = + - @ tab or CR gets a quote)."""
    value = str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_csv(path, records, tests):
    """One row per student: a column per test, the total, the maximum, the
    status, the seed, then the days late, the penalty and the final mark."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [gid for gid, _ in tests]
                   + ["total", "max", "status", "seed", "late_days", "penalty", "final"])
        for r in records:
            w.writerow([csv_text(r.name)] + [pts if r.results.get(gid, {}).get("passed") else 0 for gid, pts in tests]
                       + [r.raw(tests), sum(p for _, p in tests), r.status, "" if r.seed is None else r.seed,
                          r.late_days, f"{r.penalty:g}", f"{r.final(tests):g}"])


def write_lms(kind, path, records, tests, title):
    """The file an LMS imports. Canvas (its gradebook import: `Student, ID,
    SIS User ID, SIS Login ID, Section`, then one column per assignment, the
    second row `Points Possible`): the homework's final mark as one
    assignment column named for it, the Canvas user ID where the file's name
    carries it (a Canvas bulk download's `name_userid_...`). Moodle (its CSV
    grade import, each column mapped to a grade item when imported): an
    identifier column and the final mark, then one column per test."""
    maximum = sum(p for _, p in tests)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if kind == "canvas":
            w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", title])
            w.writerow(["Points Possible", "", "", "", "", f"{maximum:g}"])
            for r in records:
                m = CANVAS_NAME.match(r.name)
                w.writerow([csv_text(m.group("name") if m else r.name), m.group("user") if m else "",
                            "", "" if m else csv_text(r.name), "", f"{r.final(tests):g}"])
        elif kind == "moodle":
            w.writerow(["Username", title] + [f"{title}: {gid}" for gid, _ in tests])
            for r in records:
                w.writerow([csv_text(r.name), f"{r.final(tests):g}"]
                           + [f"{pts:g}" if r.results.get(gid, {}).get("passed") else "0" for gid, pts in tests])
        else:
            raise ValueError(f"--lms {kind!r}: canvas or moodle")
