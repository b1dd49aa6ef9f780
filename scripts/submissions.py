"""The submissions folder (grade.py): one entry per student, each looked at
with `lstat` and never followed or opened blocking; names are data (shown
without control characters, cut to NAME_CAP, made safe and unique as file
names); a notebook read only if it is a regular file under the cap.
"""
import hashlib
import json
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from handin import clean

SUBMISSION_CAP = 32 << 20
NAME_CAP = 80  # characters of a student's name as shown


@dataclass
class Submission:
    """One student's entry in the submissions folder: `name` as shown and in
    the CSV (printable, at most NAME_CAP characters), `key` its feedback
    file's name (unique, plain, short), and its notebook (`path`) or why
    there is none (`why`)."""
    name: str
    key: str
    path: Path = None
    why: str = ""


def shown_name(raw):
    """A file name's bytes as a name to show: UTF-8 (anything else replaced),
    no control or format characters, at most NAME_CAP characters."""
    text = raw.decode("utf-8", "replace")
    text = "".join("?" if unicodedata.category(ch).startswith("C") else ch for ch in text).strip()
    if len(text) > NAME_CAP:
        text = text[:NAME_CAP - 1] + "\u2026"
    return text or "(no name)"


def kind_of(mode):
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "not a regular file"


def submissions_in(folder, master):
    """One Submission per student: `NAME.ipynb`, or the notebook in a folder
    `NAME/` (the one named like the homework where there are several).
    Nothing is followed or opened here: a symbolic link (to the solution, to
    a classmate's notebook), a FIFO, a device or a socket named `.ipynb` is a
    row saying so. Entries in the order of their names' bytes."""
    wanted = {(master.stem + ".ipynb").encode(), (master.stem + "_student.ipynb").encode()}
    found = []  # (name's bytes, entry's bytes, notebook path or None, why)
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    for e in entries:
        raw = os.fsencode(e.name)
        try:
            mode = os.lstat(e.path).st_mode
        except OSError as err:
            found.append((raw, raw, None, f"could not be read ({err.strerror})"))
            continue
        if stat.S_ISDIR(mode):
            nbs, others = [], []
            try:
                with os.scandir(e.path) as inner:
                    for q in sorted(inner, key=lambda q: os.fsencode(q.name)):
                        if os.fsencode(q.name).endswith(b".ipynb"):
                            qmode = os.lstat(q.path).st_mode
                            (nbs if stat.S_ISREG(qmode) else others).append((q, qmode))
            except OSError as err:
                found.append((raw, raw + b"/", None, f"its folder could not be read ({err.strerror})"))
                continue
            named = [q for q, _ in nbs if os.fsencode(q.name) in wanted]
            if len(nbs) == 1 or len(named) == 1:
                found.append((raw, raw + b"/", Path((named or [nbs[0][0]])[0].path), ""))
            elif nbs:
                listed = ", ".join(shown_name(os.fsencode(q.name)) for q, _ in nbs)[:200]
                found.append((raw, raw + b"/", None, f"several notebooks ({listed}): name yours {master.stem}_student.ipynb"))
            elif others:
                found.append((raw, raw + b"/", None, f"its notebook is {kind_of(others[0][1])}, not a notebook file"))
            else:
                found.append((raw, raw + b"/", None, "no notebook in its folder"))
        elif raw.endswith(b".ipynb"):
            if stat.S_ISREG(mode):
                found.append((raw[:-6], raw, Path(e.path), ""))
            else:
                found.append((raw[:-6], raw, None, f"{kind_of(mode)}, not a notebook file"))
        elif stat.S_ISLNK(mode) and os.path.isdir(e.path):
            found.append((raw, raw, None, "a symbolic link, not a notebook"))
    names = [shown_name(n) for n, *_ in found]
    subs, keys = [], set()
    for (stem, entry, path, why), name in zip(found, names):
        if names.count(name) > 1:  # alice.ipynb and alice/: each named for its entry
            name = shown_name(stem + b" (" + entry + b")")
        key = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60] or "student"
        if key != name or key in keys:
            key = f"{key}-{hashlib.sha256(entry).hexdigest()[:10]}"
        keys.add(key)
        subs.append(Submission(name, key, path, why))
    return subs


def read_submission(sub):
    """The submission's JSON, or why it cannot be read. Opened without
    following a link and without waiting on a FIFO; read only if it is a
    regular file, and only up to the cap."""
    if sub.path is None:
        return None, sub.why
    try:
        fd = os.open(sub.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                return None, f"{kind_of(mode)}, not a notebook file"
            data = f.read(SUBMISSION_CAP + 1)
        if len(data) > SUBMISSION_CAP:
            return None, f"the notebook is over {SUBMISSION_CAP >> 20} MB"
        nb = json.loads(data.decode("utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            return None, "not a notebook (no list of cells)"
        return nb, ""
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        return None, f"the notebook could not be read ({type(e).__name__}: {clean(e)[:200]})"
