#!/usr/bin/env python3
"""Installs the Rust kernel, evcxr_jupyter, as a download: set-up's step 3.

  scripts/get_kernel.py            (run by scripts/setup; needs scripts/env.sh's environment)

evcxr publishes `evcxr_jupyter-v<version>-<target>.tar.gz` with each GitHub
release: one folder of that name holding the binary. This script takes that
asset for the pinned version ($EVCXR_VERSION) and this machine's target
(`rustc -vV`'s host), from the first source that has it:

  1. $SALIENCY_LAB_MIRROR/kernel/<asset>   a classroom's offline copy;
  2. $SALIENCY_LAB_KERNEL_URL/<asset>       default: evcxr's GitHub release,
                                            https://github.com/evcxr/evcxr/releases/download/v<version>

and trusts it only when its SHA-256 is one it expects: $SALIENCY_LAB_KERNEL_SHA256
where set (an instructor's own build), else the digests pinned in
scripts/kernel.sha256, else, for GitHub's own release, the digest GitHub's
release API publishes for the asset. Then it runs the binary once
(`--help`): evcxr's release binaries are built on a recent Ubuntu and may
need a newer glibc than this machine has. Only a binary that runs is
installed, as $SALIENCY_LAB_EVCXR.

Exit status: 0 installed; 3 no usable download (each source's reason on
stderr: set-up then builds from source, or stops under
SALIENCY_LAB_KERNEL=download); 1 anything else.
"""
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
PINNED = SCRIPTS / "kernel.sha256"
GITHUB = "https://github.com/evcxr/evcxr/releases/download/v{version}"
GITHUB_API = "https://api.github.com/repos/evcxr/evcxr/releases/tags/v{version}"
MAX_ASSET = 200 << 20  # the 0.22 asset is 10 MB; a server sending more is not sending it
TIMEOUT = 30


class Unusable(Exception):
    """This source's asset cannot be used; the message says why."""


def host_target():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return re.search(r"^host: (\S+)$", out, re.M).group(1)


def pinned_digests(asset):
    """The digests scripts/kernel.sha256 pins for the asset (sha256sum's format)."""
    found = set()
    for line in PINNED.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and parts[1].lstrip("*") == asset:
            found.add(parts[0].lower())
    return found


def fetch(url, limit=MAX_ASSET):
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            data = r.read(limit + 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise Unusable(f"could not be downloaded ({getattr(e, 'reason', e)})") from None
    if len(data) > limit:
        raise Unusable(f"is over {limit >> 20} MB: not the release asset")
    return data


def github_digest(version, asset):
    """The digest GitHub's release API gives for the asset ("sha256:..."), or None."""
    try:
        release = json.loads(fetch(GITHUB_API.format(version=version), 8 << 20))
    except (Unusable, json.JSONDecodeError):
        return None
    for a in release.get("assets", []):
        if a.get("name") == asset and str(a.get("digest", "")).startswith("sha256:"):
            return a["digest"].split(":", 1)[1].lower()
    return None


def expected_digests(asset, version, from_github):
    if os.environ.get("SALIENCY_LAB_KERNEL_SHA256"):
        return {os.environ["SALIENCY_LAB_KERNEL_SHA256"].strip().lower()}, "SALIENCY_LAB_KERNEL_SHA256"
    digests, where = pinned_digests(asset), "scripts/kernel.sha256"
    if from_github and (d := github_digest(version, asset)):
        digests.add(d)
        where += " or GitHub's release API"
    return digests, where


def binary_of(data, asset):
    """The evcxr_jupyter binary inside the asset: the one regular file
    `<asset folder>/evcxr_jupyter`, nothing else is read or written."""
    folder = asset[: -len(".tar.gz")]
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = tar.getmember(f"{folder}/evcxr_jupyter")
            if not member.isfile():
                raise Unusable(f"holds {folder}/evcxr_jupyter, but not as a regular file")
            return tar.extractfile(member).read()
    except KeyError:
        raise Unusable(f"has no {folder}/evcxr_jupyter (not evcxr's release layout)") from None
    except (tarfile.TarError, EOFError, OSError) as e:
        raise Unusable(f"is not a readable .tar.gz ({e})") from None


def runs(path):
    """None if `path --help` runs here, else why not (its own words)."""
    try:
        r = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    except OSError as e:
        return str(e)
    except subprocess.TimeoutExpired:
        return f"--help did not answer within {TIMEOUT} s"
    if r.returncode != 0:
        text = (r.stderr or r.stdout).strip().splitlines()
        return f"exit status {r.returncode}: {text[-1] if text else 'no output'}"
    return None


def try_source(name, load, asset, version, from_github, dest):
    data = load()
    digest = hashlib.sha256(data).hexdigest()
    want, where = expected_digests(asset, version, from_github)
    if not want:
        raise Unusable(f"has no SHA-256 to check it against (none in {where}; set SALIENCY_LAB_KERNEL_SHA256)")
    if digest not in want:
        raise Unusable(f"has SHA-256 {digest}, not the one expected ({where}): a corrupt or different file")
    binary = binary_of(data, asset)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(binary)
    part.chmod(0o755)
    why = runs(part)
    if why:
        part.unlink()
        raise Unusable(f"was verified, but its binary does not run here ({why}); evcxr's release binaries need a recent glibc")
    os.replace(part, dest)
    (dest.parent / "source.txt").write_text(f"{asset} from {name}, sha256 {digest}\n")
    return digest


def main():
    version = os.environ["EVCXR_VERSION"]
    dest = Path(os.environ["SALIENCY_LAB_EVCXR"])
    target = host_target()
    asset = f"evcxr_jupyter-v{version}-{target}.tar.gz"
    sources = []
    mirror = os.environ.get("SALIENCY_LAB_MIRROR")
    if mirror:
        path = Path(mirror) / "kernel" / asset
        sources.append((str(path), (lambda: path.read_bytes()) if path.is_file() else None, False))
    base = os.environ.get("SALIENCY_LAB_KERNEL_URL") or GITHUB.format(version=version)
    url = f"{base.rstrip('/')}/{asset}"
    sources.append((url, lambda: fetch(url), base.startswith("https://github.com/")))
    reasons = []
    for name, load, from_github in sources:
        if load is None:
            reasons.append(f"{name}: no such file in the mirror")
            continue
        try:
            digest = try_source(name, load, asset, version, from_github, dest)
        except Unusable as e:
            reasons.append(f"{name}: {e}")
            continue
        print(f"evcxr_jupyter {version} from {name} (sha256 {digest[:16]}..., runs here)")
        return 0
    print(f"no usable prebuilt evcxr_jupyter {version} for {target}:", file=sys.stderr)
    for r in reasons:
        print(f"  - {r}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
