"""Near-identical answers across a class's submissions, for an instructor
to look at (never a verdict): the answer cells of each submission, as Rust
tokens with comments and whitespace gone, names renamed in the order they
first appear (`a`, `b`, ... become `v0`, `v1`, ...: renaming a variable
changes nothing) and literals kept by kind; then the Jaccard similarity of
their sets of token 8-grams. The starter code every student was given (the
student version's answer cells) is left out of every set, so that what
everyone shares does not count.

A pair at or above THRESHOLD is listed. On this project's kept honest
submissions, written independently, the highest pair is well below it (the
test in crate/tests/notebooks.rs says how far); a submission copied with its
names, comments and spacing changed scores 1.0.
"""
import re

N = 8
THRESHOLD = 0.7
# Rust's keywords and the words every answer shares (types, prelude names)
# keep their spelling: renaming them would hide structure, not names.
KEYWORDS = set("""as break const continue crate else enum extern false fn for if impl in let loop match mod move mut
pub ref return self Self static struct super trait true type unsafe use where while async await dyn
Ok Err Some None Result Option Vec Box String Tensor Kind Device f32 f64 i64 i32 u8 usize""".split())
TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>r\#*".*?"\#*|b?"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])')
  | (?P<number>\d[\d_]*(?:\.\d[\d_]*)?(?:e[+-]?\d+)?(?:_?[a-z]\w*)?)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<punct>::|->|=>|[-+*/%^!&|=<>]=?|&&|\|\||\.\.=?|[^\s\w])
""", re.VERBOSE | re.DOTALL)


def tokens(source):
    """The normalised tokens of Rust source: comments dropped, names
    renamed by first appearance, strings and numbers by kind."""
    names, out = {}, []
    for m in TOKEN.finditer(source):
        kind = m.lastgroup
        text = m.group()
        if kind == "comment":
            continue
        if kind == "string":
            out.append('"s"')
        elif kind == "number":
            out.append("0")
        elif kind == "name":
            out.append(text if text in KEYWORDS else names.setdefault(text, f"v{len(names)}"))
        else:
            out.append(text)
    return out


def shingles(source, n=N):
    """The set of token n-grams of `source`."""
    t = tokens(source)
    return {tuple(t[i:i + n]) for i in range(max(0, len(t) - n + 1))}


def jaccard(a, b):
    return len(a & b) / len(a | b) if a and b else 0.0


def similar_pairs(answers, starter="", threshold=THRESHOLD):
    """[(name, name, similarity)] of the submissions whose answers
    (`answers`: {name: their answer cells' source, joined}) are at least
    `threshold` alike, most alike first; `starter`: the code every student
    was given, left out."""
    given = shingles(starter)
    sets = {name: shingles(text) - given for name, text in answers.items()}
    names = sorted(sets)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            s = jaccard(sets[a], sets[b])
            if s >= threshold:
                pairs.append((a, b, s))
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def highest_pair(answers, starter=""):
    """The most alike pair, whatever its score: (name, name, similarity), or
    None with fewer than two submissions."""
    pairs = similar_pairs(answers, starter, threshold=-1.0)
    return pairs[0] if pairs else None
