"""The values a graded test hands in: their wire format, the collector's
rules for taking them, and the grader's own checked copies; and the rest of
what a sandbox sends, made safe: its text (`clean`) and figures (`safe_png`). The Rust side is
crate/src/grading/wire.rs (a test ties the two: crate/tests/handin_wire.rs).
A leaf: it imports nothing of the project's.

A test's first part, in the student's sandboxed kernel, prints one line per
value and one for its outcome:

  SALIENCY_LAB_HAND_IN {"test": ID, "name": NAME, "ext": "npy"|"txt"|"json", "data": BASE64}
  SALIENCY_LAB_HAND_IN {"test": ID, "outcome": "ok"}  (or "failed", with "message")

The collector (sandbox_worker.py, outside the sandbox) reads them from the
kernel's output messages and knows which cell each message belongs to
(its parent request): `HandIns.take` keeps a value only if it arrives while
its own test's cell runs, before that test's outcome, once per name. Anything
else fails the test it names as tampering. The student's code can print
such lines too; what it cannot do is hand in a value outside the test's cell,
or know the test's inputs before the test draws them.
"""
import base64
import binascii
import io
import json

MARK = "SALIENCY_LAB_HAND_IN "
# How each type `hand_in!` takes travels (crate/src/grading/wire.rs, `HandIn`).
VALUE_EXT = {"Tensor": "npy", "f64": "npy", "f32": "npy", "i64": "npy", "usize": "npy", "bool": "npy",
             "Vec<f64>": "npy", "Vec<f32>": "npy", "Vec<i64>": "npy", "Vec<bool>": "npy",
             "String": "txt", "Figure": "json"}
PANEL_KINDS = ("Image", "Map", "Overlay", "Empty")
# Caps on what a submission hands in (the student's data: anything at all).
LINE_CAP = 32 << 20  # characters of one hand-in line (a value's base64)
NOTEBOOK_CAP = 64 << 20  # characters of all hand-ins of one notebook
VALUE_CAP = 16 << 20  # elements of one array
PIXEL_CAP = 50_000_000  # pixels of one figure
TEXT_CAP = 2000  # characters of an outcome's message


def records_in(text):
    """The hand-in records in a piece of a stream's text: (record, None) for
    each line holding the mark, or (None, why) where the line after the mark
    is not a record."""
    out = []
    for line in text.split("\n"):
        at = line.find(MARK)
        if at < 0:
            continue
        body = line[at + len(MARK):]
        if len(body) > LINE_CAP:
            out.append((None, f"a hand-in line of {len(body)} characters, over the grader's {LINE_CAP}"))
            continue
        try:
            record = json.loads(body)
        except ValueError:
            out.append((None, "a hand-in line that is not JSON"))
            continue
        if not isinstance(record, dict) or not isinstance(record.get("test"), str):
            out.append((None, "a hand-in line without a test"))
            continue
        out.append((record, None))
    return out


def without_records(text):
    """A stream's text with the hand-in lines taken out (what the cell printed)."""
    return "\n".join(l for l in text.split("\n") if MARK not in l)


class HandIns:
    """What one notebook handed in, by test: its values (name.ext -> bytes,
    or None past the cap), its outcome, and why it counts as tampering."""

    def __init__(self, tests):
        self.tests = set(tests)
        self.values = {t: {} for t in self.tests}
        self.outcome = {}
        self.tampering = {t: [] for t in self.tests}
        self.notes = []
        self.size = 0

    def take(self, record, cell_test, in_cell):
        """One record, from a message of the cell whose test is `cell_test`
        (None: not a test's cell); `in_cell`: the message belongs to the cell
        running now (not to one that finished)."""
        test = record["test"]
        if test not in self.tests:
            self.notes.append("a hand-in for a test this homework does not have")
            return
        tamper = self.tampering[test].append
        if not in_cell or cell_test != test:
            tamper("a value or outcome of this test was printed outside the test's own cell")
            return
        if "outcome" in record:
            if test in self.outcome:
                tamper("the test's outcome was printed twice")
            else:
                ok = record["outcome"] == "ok"
                message = record.get("message") if isinstance(record.get("message"), str) else ""
                self.outcome[test] = (ok, message[:TEXT_CAP])
            return
        name, ext, data = record.get("name"), record.get("ext"), record.get("data")
        if not all(isinstance(v, str) for v in (name, ext, data)):
            tamper("a hand-in record without a name, type and data")
            return
        if test in self.outcome:
            tamper(f"`{name[:50]}` was printed after the test's outcome")
            return
        key = f"{name[:100]}.{ext[:10]}"
        if key in self.values[test]:
            tamper(f"`{name[:50]}` was handed in twice")
            return
        if self.size + len(data) > NOTEBOOK_CAP:
            self.values[test][key] = None
            return
        self.size += len(data)
        try:
            self.values[test][key] = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            tamper(f"`{name[:50]}` is not base64")

    def report(self):
        """JSON-ready: per test its values (base64), outcome and tampering."""
        enc = lambda v: None if v is None else base64.b64encode(v).decode()
        return {t: {"values": {k: enc(v) for k, v in self.values[t].items()},
                    "outcome": list(self.outcome[t]) if t in self.outcome else None,
                    "tampering": self.tampering[t]} for t in sorted(self.tests)}


def decode_report(report, tests):
    """`HandIns.report()` back, for the grader: {test: (values {name.ext:
    bytes or None}, outcome (ok, message) or None, tampering [why])}."""
    out = {}
    for t in tests:
        r = report.get(t) if isinstance(report, dict) else None
        r = r if isinstance(r, dict) else {}
        values = {str(k): (None if v is None else base64.b64decode(v)) for k, v in (r.get("values") or {}).items()
                  if v is None or isinstance(v, str)}
        outcome = r.get("outcome")
        outcome = (bool(outcome[0]), str(outcome[1])) if isinstance(outcome, list) and len(outcome) == 2 else None
        out[t] = (values, outcome, [str(w) for w in r.get("tampering") or []])
    return out


# -- the grader's own copies of the values --------------------------------------------
def canonical(data, ext, dest):
    """Checks a handed-in value (the student's data, anything at all) and
    writes the grader's own copy of it; returns why it cannot be used, or
    None. Nothing it reads decides more than this value's fate."""
    try:
        if ext == "npy":
            import numpy as np
            a = read_npy(data)
            if a.dtype.kind == "f" and a.dtype.itemsize < 4:
                a = a.astype(np.float32)
            elif a.dtype.kind in "iu" and a.dtype != np.int64:
                a = a.astype(np.int64)
            np.save(dest, np.array(a, order="C"), allow_pickle=False)  # (ascontiguousarray makes 0-d 1-d)
        elif ext == "txt":
            dest.write_text(data.decode("utf-8"), encoding="utf-8")
        elif ext == "json":
            dest.write_text(json.dumps(canonical_figure(json.loads(data, parse_constant=no_constant))))
        else:
            return f"a .{ext} file"
    except Exception as e:  # noqa: BLE001 -- whatever the data provokes, it is this value's failure
        return f"unreadable ({type(e).__name__}: {str(e)[:100]})"
    return None


def read_npy(data):
    """An .npy file's array, its header checked before anything is allocated:
    a plain array of numbers or booleans, of the size the file holds."""
    import numpy as np
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy version {version}")
    if dtype.hasobject or dtype.kind not in "fiub" or dtype.itemsize > 8 or len(shape) > 8:
        raise ValueError(f"a {dtype} array")
    count = 1
    for d in shape:
        count *= d
    if count > VALUE_CAP or count * dtype.itemsize != len(data) - f.tell():
        raise ValueError(f"shape {shape} for {len(data) - f.tell()} bytes")
    return np.load(io.BytesIO(data), allow_pickle=False)


def no_constant(name):
    raise ValueError(f"{name} in JSON")


def canonical_figure(f):
    """A figure's record (crate/src/grading/wire.rs, `FigureWire`) rebuilt
    from checked fields only."""
    from PIL import Image
    grid = f["grid"]
    if grid is not None:
        grid = [int(grid[0]), int(grid[1])]
        if not (0 <= grid[0] <= 100 and 0 <= grid[1] <= 100):
            raise ValueError("grid")
    panels = []
    for p in f["panels"][:10000]:
        kind = p["kind"]
        if kind not in PANEL_KINDS:
            raise ValueError(f"a panel of kind {str(kind)[:20]!r}")
        panels.append({"row": int(p["row"]), "col": int(p["col"]), "kind": kind,
                       "title": str(p["title"])[:1000], "x": int(p["x"]), "y": int(p["y"]), "size": int(p["size"])})
        if any(not 0 <= panels[-1][k] < 1 << 31 for k in ("row", "col", "x", "y", "size")):
            raise ValueError("panel")
    png = base64.b64decode(f["png"], validate=True)
    Image.MAX_IMAGE_PIXELS = PIXEL_CAP
    with Image.open(io.BytesIO(png)) as im:
        if im.format != "PNG" or im.size[0] * im.size[1] > PIXEL_CAP:
            raise ValueError("png")
        im.verify()
    return {"grid": grid, "panels": panels, "png": base64.b64encode(png).decode()}


def clean(text):
    """Text from a sandbox made safe to print and write: valid UTF-8, no
    control characters but newlines and tabs."""
    text = str(text).encode("utf-8", "replace").decode("utf-8", "replace")
    return "".join(c if c in "\n\t" or (c.isprintable() and c not in "\u2028\u2029") else "?" for c in text)


def safe_png(b64):
    """A figure a submission drew, as PNG bytes re-encoded by Pillow (its
    pixels, nothing else of the file), or None for anything else."""
    import base64
    import io
    from PIL import Image
    try:
        raw = base64.b64decode(b64, validate=True)
        with Image.open(io.BytesIO(raw)) as im:
            if im.format != "PNG" or im.width * im.height > 16_000_000:
                return None
            out = io.BytesIO()
            im.convert("RGB").save(out, "PNG")
        return out.getvalue()
    except Exception:  # noqa: BLE001 -- anything a student's kernel sent
        return None
