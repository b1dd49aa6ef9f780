"""Runs `scripts/grade.py` as an ordinary user, from root: the grading test's
way to prove the grader's walls on the path a non-root instructor takes (a
user namespace for the collector and the sandbox, prlimit without cgroups).

  python scripts/tests/grade_as_user.py SUBMISSIONS_DIR OUT_DIR [grade.py's options]

The user is a uid of its own with no name, group or capability (UID). It
must reach what set-up made as root, as a user's own set-up would have made
it: in a private mount namespace (nothing of it outlives the run),

- every folder on the way to the clone, the toolchain, the venv's Python and
  set-up's cache that others cannot enter (root's home) is covered by a
  copy that they can, whose entries are the original ones bound in;
- set-up's cache is an overlay whose writable layer the user owns, holding
  its own copies of what a kernel and the grader write to (evcxr's warmed
  build folder, the kernel's folder, ...) and an empty `grading` folder;
  the venv, the builds and the assets stay root's and read-only.

The submissions are copied to a folder the user can read; grade.py's CSV,
feedback and report come back in OUT_DIR (root's). The exit status is
grade.py's. Nothing is changed outside the namespace but a temporary folder,
removed at the end.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nbshared import ROOT, lab_home, warm_folder  # noqa: E402

UID = 61_017
# Set-up's cache: what the user gets copies of, as its own set-up would have
# made them (evcxr's warmed build folder, whose lock files are its owner's
# alone; the kernel's folder, where it writes its log; ...). The rest (the
# venv, the builds, the assets) stays root's and read-only; `grading` starts
# empty.
COPIED = {"evcxr-tmp", "kernel", "jupyter", "warm", "hints", "logs", ".warm", ".cargo"}


def enterable_by_others(path):
    return bool(path.stat().st_mode & stat.S_IXOTH)


def open_up(path, stash, log):
    """Covers `path` (a folder others cannot enter) with a tmpfs they can,
    holding its original entries bound in."""
    original = stash / str(len(list(stash.iterdir())))
    original.mkdir()
    subprocess.run(["mount", "--bind", str(path), str(original)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(path)], check=True)
    for entry in original.iterdir():
        target = path / entry.name
        if entry.is_dir() and not entry.is_symlink():
            target.mkdir()
        elif entry.is_symlink():
            target.symlink_to(os.readlink(entry))
            continue
        else:
            target.touch()
        subprocess.run(["mount", "--bind", str(entry), str(target)], check=True)
    log(f"opened {path} to the user")


def open_the_way(paths, stash, log):
    """Every folder on the way to each of `paths`, top down."""
    for p in paths:
        p = Path(p).resolve()
        for a in [*reversed(p.parents), p]:
            if a.is_dir() and not enterable_by_others(a):
                open_up(a, stash, log)


def overlay_home(home, layer):
    """Set-up's cache as an overlay: the user's own copies over root's."""
    upper, work = layer / "upper", layer / "work"
    upper.mkdir()
    work.mkdir()
    warm = warm_folder().resolve()
    copied = COPIED | ({warm.relative_to(home).parts[0]} if warm.is_relative_to(home) else set())
    for entry in home.iterdir():
        if entry.name not in copied:
            continue
        dst = upper / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, dst, symlinks=True)
        else:
            shutil.copy2(entry, dst, follow_symlinks=False)
    (upper / "grading").mkdir()
    os.setxattr(upper / "grading", "trusted.overlay.opaque", b"y")  # not root's grading folder
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), UID, UID)
    os.chown(upper, UID, UID)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={home},upperdir={upper},workdir={work}", str(home)], check=True)


def inside(work, subs, out, options):
    """In the private mount namespace: make the way, then grade as UID."""
    log = print
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(work)], check=True)
    stash = work / "stash"
    stash.mkdir()
    home = lab_home().resolve()
    python_base = Path(subprocess.run([sys.executable, "-c", "import sys; print(sys.base_prefix)"],
                                      capture_output=True, text=True, check=True).stdout.strip())
    rustup = Path(os.environ.get("RUSTUP_HOME", Path.home() / ".rustup"))
    cargo = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    mirror = os.environ.get("SALIENCY_LAB_MIRROR")
    # (Set-up's cache itself becomes the user's as the overlay's top: only
    # the way to it is opened, or the overlay would see the opening's empty
    # mount points instead of its entries.)
    ways = [ROOT, home.parent, python_base, rustup, cargo, subs, out] + ([mirror] if mirror else [])
    open_the_way(ways, stash, log)
    overlay_home(home, work)
    user_home = work / "home"
    user_home.mkdir()
    os.chown(user_home, UID, UID)
    env = {
        "HOME": str(user_home), "USER": f"uid{UID}", "LOGNAME": f"uid{UID}", "LANG": "C.UTF-8",
        "PATH": f"{cargo}/bin:/usr/local/bin:/usr/bin:/bin",
        "RUSTUP_HOME": str(rustup), "CARGO_HOME": str(cargo), "SALIENCY_LAB_HOME": str(home),
    }
    if mirror:
        env["SALIENCY_LAB_MIRROR"] = mirror
    command = ("source scripts/env.sh && exec python scripts/grade.py \"$@\"")
    grade = [str(subs), "--out", f"{out}/grades.csv", "--feedback", f"{out}/feedback", "--report",
             f"{out}/report", *options]
    who = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--inh-caps=-all",
           "--bounding-set=-all"]
    log(f"grading as uid {UID} (no name, no group, no capability)", flush=True)
    return subprocess.run([*who, "env", "-i", *[f"{k}={v}" for k, v in env.items()], "bash", "-c",
                           command, "grade", *grade], cwd=ROOT).returncode


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "--inside":
        work, subs, out = map(Path, sys.argv[2:5])
        sys.exit(inside(work, subs, out, sys.argv[5:]))
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if os.geteuid() != 0:
        sys.exit("grade_as_user.py runs as root (it makes the ordinary user's way); as an ordinary user, "
                 "run scripts/grade.py itself")
    submissions, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    with tempfile.TemporaryDirectory(prefix="saliency-as-user-") as t:
        t = Path(t)
        os.chmod(t, 0o755)
        subs, results, work = t / "submissions", t / "out", t / "work"
        shutil.copytree(submissions, subs, symlinks=True)
        results.mkdir()
        work.mkdir()
        for p in (subs, results):
            for dirpath, dirnames, filenames in os.walk(p):
                for name in [*dirnames, *filenames]:
                    os.lchown(os.path.join(dirpath, name), UID, UID)
            os.chown(p, UID, UID)
        rc = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, __file__,
                             "--inside", str(work), str(subs), str(results), *sys.argv[3:]]).returncode
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(results, out)
    sys.exit(rc)


if __name__ == "__main__":
    main()
