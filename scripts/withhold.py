"""What a homework withholds from the crate its submissions are graded
with (grade.py, sandbox.py): crate/Cargo.toml's
`package.metadata.grading.withhold` lists, per feature, its files and the
names it defines; `grading_crate` makes the copy without them (their files
deleted, the features gone from its manifest, so that no name, path or
`:dep` feature flag brings them back), kept in set-up's cache per version
of the crate (`crate_digest`).

The manifest is read with tomllib and written by `strip_manifest` line by
line: Python's standard library has no TOML writer, and the copy keeps the
manifest's own text for what it does not drop.
"""
import hashlib
import json
import re
import shutil
from pathlib import Path

from nbshared import ROOT, lab_home

# The grading build folder's recipe (a change makes it again).
CACHE_FORMAT = "without the crate's and the cells' artifacts, checked; the withheld cfgs allowed"


def withhold_spec():
    """crate/Cargo.toml's `package.metadata.grading.withhold`: per feature,
    its files and the names it defines."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    manifest = tomllib.loads((ROOT / "crate" / "Cargo.toml").read_text())
    return manifest["package"]["metadata"]["grading"]["withhold"]


def grading_crate(withhold):
    """A copy of the crate without the features in `withhold`: their files
    deleted, the features gone from its manifest (so no `:dep` feature flag
    brings them back), no binaries. Kept in set-up's cache, one per version."""
    spec = withhold_spec()
    unknown = [f for f in withhold if f not in spec]
    if unknown:
        raise ValueError(f"the solution notebook withholds {unknown}; the crate can withhold {sorted(spec)}")
    src = ROOT / "crate"
    digest = hashlib.sha256((CACHE_FORMAT + json.dumps(sorted(withhold)) + crate_digest()).encode()).hexdigest()[:16]
    dst = lab_home() / "grading" / f"crate-{digest}"
    if dst.exists():
        return dst
    for old in (lab_home() / "grading").glob("crate-*"):  # other versions of the crate's
        marker = old / ".crate"
        if not marker.exists() or marker.read_text() != crate_digest():
            shutil.rmtree(old, ignore_errors=True)
    tmp = dst.with_name(dst.name + ".part")
    shutil.copytree(src / "src", tmp / "src", ignore=shutil.ignore_patterns("bin"))
    shutil.copy2(src / "build.rs", tmp / "build.rs")
    for feature in withhold:
        for f in spec[feature]["files"]:
            (tmp / f).unlink()
    (tmp / "Cargo.toml").write_text(strip_manifest((src / "Cargo.toml").read_text(), withhold))
    (tmp / ".crate").write_text(crate_digest())
    tmp.rename(dst)
    return dst


def crate_digest():
    """The crate's version, as its manifest's and sources' digest."""
    src = ROOT / "crate"
    h = hashlib.sha256()
    sources = [p for p in (src / "src").rglob("*") if p.suffix in (".rs", ".cpp")]
    for p in sorted([src / "Cargo.toml", src / "build.rs"] + sources):
        h.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def strip_manifest(text, withhold):
    """The crate's manifest without binaries, examples, the withheld
    features (from `default` too) and the grading metadata."""
    out, skip = [], False
    for line in text.splitlines():
        header = line.strip().startswith("[")
        if header:
            skip = line.strip() in ("[[bin]]", "[[example]]", "[dev-dependencies]") or \
                line.strip().startswith("[package.metadata.grading")
        if skip or line.lstrip().startswith("#"):
            continue
        feature = line.split("=", 1)[0].strip()
        if feature in withhold:
            continue
        if feature == "default":
            names = [n for n in re.findall(r'"([^"]+)"', line) if n not in withhold]
            line = "default = [" + ", ".join(f'"{n}"' for n in names) + "]"
        out.append(line)
    stripped = "\n".join(out) + "\n"
    if withhold:
        # The withheld features' `cfg`s stay in the sources (their code is
        # gone): rustc's check of cfg names would warn on every build of the
        # crate, and evcxr shows a dependency's warnings as a cell's errors.
        stripped += "\n[lints.rust]\nunexpected_cfgs = \"allow\"\n"
    for f in withhold:
        if re.search(rf'(^|[^\w-]){re.escape(f)}([^\w-]|$)', stripped):
            raise ValueError(f"the crate's manifest still names feature {f} after stripping")
    return stripped


def withheld_in_build(folder, withhold):
    """The build records (`.d` files) under `folder` that name a withheld
    feature's file: rustc compiled that code there."""
    spec = withhold_spec()
    files = [f"/crate/{f}" for feature in withhold for f in spec[feature]["files"]]
    found = []
    for d in Path(folder).rglob("*.d"):
        text = d.read_text(errors="replace")
        found += [f"{d.name} names {f}" for f in files if f in text]
    return found
