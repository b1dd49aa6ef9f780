"""The sandbox a graded notebook's kernel runs in: bubblewrap (Debian's
`bubblewrap`), util-linux's `prlimit`, `setpriv` and `unshare`, and cgroups
where the machine lets the grader make them.

Each submission's Rust kernel, and with it everything the student's code
starts, runs in a sandbox of its own, made afresh for the notebook and gone
after it. The collector that runs the cells and reports for them
(sandbox_worker.py) is the grader's own process outside it: it shares with
the sandbox only a network namespace of its own (`unshare --net`, loopback
only, where the kernel's ZMQ ports are; as an ordinary user inside a user
namespace of its own, `unshare --user --map-root-user --net`) and the
kernel's connection file, read-only. The sandbox:

- a filesystem of read-only system folders, toolchain, venv, the lab's data
  and weights, and the crate as the homework grades it (withhold.py:
  without the features that answer the homework); writable only: an empty
  working folder, a home, /tmp, and a copy of evcxr's warmed build folder,
  all in memory (tmpfs) and gone afterwards. Nothing of the project's clone
  but its workspace manifest: no solution notebook, no hidden test, no other
  submission, no grade; nothing of the collector's;
- no network but the collector's namespace's loopback, where nothing but
  the kernel itself listens;
- its own PID namespace: the collector and the grader are not in it (no
  signal, `ptrace`, `pidfd_getfd` or `process_vm_*` can name them), and no
  process outlives the sandbox (`setsid` or a double fork stay inside it;
  when the sandbox's first process ends, the kernel kills the rest; when
  the collector ends, bwrap's --die-with-parent ends the sandbox);
- an unprivileged user: without root, a user namespace; as root, the
  sandbox drops to a user id of its own (one per worker, 60000 + k) with no
  capabilities, so root-owned files stay unreadable;
- limits: memory and processes by a cgroup of its own where the grader can
  make one (cgroup v2, or v1's memory and pids controllers), which also
  gives it an equal share of the cores however many processes it starts
  (cgroup v2's, or v1's cpu controller); else memory and processes by
  `prlimit` per process; file size and core dumps by `prlimit`; time by the
  grader, which kills the sandbox at the notebook's limit; what comes out is
  read up to a cap.

`Sandbox.check()` says why a machine cannot sandbox; grade.py then refuses,
unless told `--unsafe-no-sandbox`.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nbshared import ROOT, lab_home, warm_folder, warm_notebook
from withhold import CACHE_FORMAT, crate_digest, grading_crate, withheld_in_build

WORKER = Path(__file__).resolve().parent / "sandbox_worker.py"
OUTPUT_CAP = 96 << 20  # the collector's report, hand-ins included (handin.NOTEBOOK_CAP, as base64)
STDERR_CAP = 64 << 10
MEMORY = 8 << 30  # at most, for a notebook's kernel, rustc, rust-analyzer, libtorch and its tmpfs
PROCESSES = 512
FILE_SIZE = 2 << 30
TMPFS = {"/tmp": 1 << 30, "/dev/shm": 256 << 20, "/grading": 1 << 30}
# The kernel's start inside the sandbox: its own copy of evcxr's warmed build
# folder (in memory), then evcxr on the connection file the collector
# appends ($0).
KERNEL_SCRIPT = ('if [ -d "$SALIENCY_LAB_GRADING_CACHE" ] && [ ! -e "$EVCXR_TMPDIR" ]; then '
                 'cp -a "$SALIENCY_LAB_GRADING_CACHE" "$EVCXR_TMPDIR" || exit 1; fi; '
                 'exec "$SALIENCY_LAB_EVCXR" --control_file "$0"')
# What the sandbox check runs inside a sandbox: who and where it is.
PROBE_SCRIPT = ("import json, os, socket; print(json.dumps({'sandboxed': True, 'uid': os.getuid(), "
                "'pid': os.getpid(), 'interfaces': [n for _, n in socket.if_nameindex()]}))")
BASE_UID = 60000
# Seconds past the notebook's limit before the collector itself is killed:
# its kernel's start (sandbox_worker.START_LIMIT) and stop.
BACKSTOP = 360
# Python packages of the venv a sandbox does not see: other libraries' own
# answers to the homework (Captum's NoiseTunnel, Quantus' metrics, Zennit's LRP).
MASKED_PACKAGES = ["captum", "quantus", "zennit"]


class SandboxUnavailable(RuntimeError):
    """This machine cannot make the sandbox: the message says why and what to do."""


def bwrap():
    """bubblewrap: $SALIENCY_LAB_BWRAP, else on PATH, else set-up's unpacked copy."""
    found = os.environ.get("SALIENCY_LAB_BWRAP") or shutil.which("bwrap") or (lab_home() / "sandbox" / "bwrap")
    return str(found) if Path(found).exists() else None


def host_paths():
    """The host folders a sandbox sees read-only, as (source, destination)."""
    venv = Path(os.environ.get("SALIENCY_LAB_VENV", lab_home() / "venv"))
    python = venv / "bin" / "python"
    base = subprocess.run([str(python), "-c", "import sys; print(sys.base_prefix)"], capture_output=True,
                          text=True, check=True).stdout.strip()
    rustup = Path(os.environ.get("RUSTUP_HOME", Path.home() / ".rustup"))
    cargo = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    return venv, Path(base), rustup, cargo


def rust_std_dir():
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
    host = re.search(r"^host: (.+)$", subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                                                     check=True).stdout, re.M).group(1)
    return f"{sysroot}/lib/rustlib/{host}/lib"


class Cgroup:
    """A cgroup for one sandbox (memory and process limits), where this
    machine lets the grader make one: cgroup v2, or v1's memory and pids
    controllers. `Cgroup.make` returns None where it cannot."""

    def __init__(self, dirs, v2):
        self.dirs, self.v2 = dirs, v2
        self.kind = "cgroup v2" if v2 else "cgroup v1"

    @staticmethod
    def own_path(controller):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if (controller is None and names == "") or controller in names.split(","):
                return path
        return None

    @classmethod
    def make(cls, name, memory=MEMORY):
        root = Path("/sys/fs/cgroup")
        made = []
        try:
            if (root / "cgroup.controllers").exists():  # v2, unified at /sys/fs/cgroup
                return cls.make_v2(root, name, memory)
            for ctl, setting, value in (("memory", "memory.limit_in_bytes", memory),
                                        ("pids", "pids.max", PROCESSES)):
                own = cls.own_path(ctl)
                if own is None or not (root / ctl).is_dir():
                    raise OSError(f"no {ctl} controller")
                d = root / ctl / own.lstrip("/") / name
                d.mkdir(exist_ok=True)
                made.append(d)
                (d / setting).write_text(str(value))
            own = cls.own_path("cpu")
            if own is not None and (root / "cpu").is_dir():  # optional: an equal share of the cores
                try:
                    d = root / "cpu" / own.lstrip("/") / name
                    d.mkdir(exist_ok=True)
                    made.append(d)
                except OSError:
                    pass
            return cls(made, False)
        except (OSError, TypeError, AttributeError):
            for d in made:
                try:
                    d.rmdir()
                except OSError:
                    pass
            return None

    @classmethod
    def make_v2(cls, root, name, memory):
        """Under the grader's own cgroup, or else the root one (as root): the
        first whose children get the memory and pids controllers (a cgroup
        that holds processes cannot hand controllers down, so the grader's
        own often cannot)."""
        for parent in (root / cls.own_path(None).lstrip("/"), root):
            try:
                control = parent / "cgroup.subtree_control"
                wanted = {"memory", "pids", "cpu"} & set((parent / "cgroup.controllers").read_text().split())
                missing = {"memory", "pids"} - set(control.read_text().split())
                if missing:
                    control.write_text(" ".join(f"+{c}" for c in sorted(wanted)))
                d = parent / name
                d.mkdir(exist_ok=True)
                if (d / "memory.max").exists() and (d / "pids.max").exists():
                    (d / "memory.max").write_text(str(memory))
                    if (d / "memory.swap.max").exists():
                        (d / "memory.swap.max").write_text("0")
                    (d / "pids.max").write_text(str(PROCESSES))
                    return cls([d], True)  # cpu.weight: each sandbox's default, an equal share
                d.rmdir()
            except (OSError, TypeError, AttributeError):
                continue
        return None

    def enter_command(self):
        """Shell words that move the shell into this cgroup."""
        return [f"echo $$ > {shlex_quote(str(d / 'cgroup.procs'))}" for d in self.dirs]

    def kill_all(self):
        for d in self.dirs:
            if self.v2 and (d / "cgroup.kill").exists():
                try:
                    (d / "cgroup.kill").write_text("1")
                except OSError:
                    pass
            for _ in range(50):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.05)

    def remove(self):
        self.kill_all()
        for d in self.dirs:
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


class Sandbox:
    """How this grading run makes a notebook's sandbox (see the module's
    docs). `crate` is the crate as the homework grades it; `cache` evcxr's
    build folder warmed with it (`prepare`); `slot` tells side-by-side
    sandboxes apart (their user ids, cgroups)."""

    def __init__(self, crate=None, cache=None, unsafe=False, jobs=1):
        self.crate, self.cache, self.unsafe = crate, cache, unsafe
        self.set_jobs(jobs)
        self.root = os.geteuid() == 0
        self.venv, self.base, self.rustup, self.cargo = host_paths()
        self.home = lab_home()
        self.build = warm_folder()
        self.std_dir = rust_std_dir()
        self.evcxr = Path(os.environ.get("SALIENCY_LAB_EVCXR", ""))
        self.live, self.live_lock = set(), threading.Lock()
        probe = None if unsafe else Cgroup.make(f"saliency-grading-{os.getpid()}-probe", self.memory)
        self.cgroups = probe.kind if probe else None
        if probe:
            probe.remove()

    def set_jobs(self, jobs):
        """Side by side, `jobs` sandboxes and the grader's own kernel share
        the machine's memory: each sandbox gets its share, 8 GB at most."""
        self.memory = min(MEMORY, physical_memory() // (jobs + 1))

    def isolation(self):
        """What this machine's sandboxes get, in words."""
        if self.unsafe:
            return "NO SANDBOX (--unsafe-no-sandbox)"
        who = f"user ids {BASE_UID}+ (root drops to them)" if self.root else "a user namespace"
        limits = (f"{self.cgroups} (memory {self.memory / 2**30:.1f} GB, {PROCESSES} processes, an equal share of "
                  f"the cores)" if self.cgroups else
                  f"no cgroup the grader can make: prlimit per process (memory {self.memory / 2**30:.1f} GB, "
                  f"processes counted per user)")
        return f"bubblewrap; {who}; no network; {limits}"

    def kill_all(self):
        """Kills every sandbox still running (the grader was interrupted)."""
        with self.live_lock:
            procs = list(self.live)
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass

    # -- what the sandbox sees ------------------------------------------------
    def binds(self, runtime, build_rw=None):
        """bwrap's filesystem arguments. `runtime`: the collector's folder
        for the kernel's connection file, bound read-only. `build_rw`: a host
        folder bound writable as evcxr's build folder (warming the grading
        cache), instead of an in-memory copy of `self.cache`."""
        a = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            p = Path(top)
            if p.is_symlink():
                a += ["--symlink", os.readlink(p), top]
            elif p.is_dir():
                a += ["--ro-bind", top, top]
        a += ["--proc", "/proc", "--dev", "/dev"]
        for path, size in TMPFS.items():
            a += ["--size", str(size), "--perms", "1777", "--tmpfs", path]
        # The toolchain, read-only; cargo's home writable (its locks) but for
        # its registry and programs.
        a += ["--ro-bind", str(self.rustup), str(self.rustup)]
        a += ["--size", str(64 << 20), "--perms", "1777", "--tmpfs", str(self.cargo)]
        for sub in ("bin", "registry", "git", "config.toml", "config"):
            if (self.cargo / sub).exists():
                a += ["--ro-bind", str(self.cargo / sub), str(self.cargo / sub)]
        if not str(self.base).startswith("/usr"):
            a += ["--ro-bind", str(self.base), str(self.base)]
        # Set-up's cache, in memory, with what a kernel needs read-only in it.
        a += ["--size", str(3 << 30), "--perms", "1777", "--tmpfs", str(self.home)]
        a += ["--ro-bind", str(self.venv), str(self.venv)]
        site = next(self.venv.glob("lib/python3*/site-packages"), None)
        for pkg in MASKED_PACKAGES:
            if site is not None and (site / pkg).is_dir():
                a += ["--tmpfs", str(site / pkg), "--remount-ro", str(site / pkg)]
        a += ["--ro-bind", str(self.evcxr.parent.parent), str(self.evcxr.parent.parent)]
        a += ["--ro-bind", str(self.home / "assets"), str(self.home / "assets")]
        if (self.home / ".cargo" / "config.toml").exists():
            a += ["--ro-bind", str(self.home / ".cargo"), str(self.home / ".cargo")]
        if build_rw is not None:
            a += ["--bind", str(build_rw), str(self.build)]
        elif self.cache is not None:
            a += ["--ro-bind", str(self.cache), "/grading/cache"]
        # Of the clone: the workspace manifest and the crate as graded; the
        # notebook's working folder empty.
        a += ["--ro-bind", str(ROOT / "Cargo.toml"), str(ROOT / "Cargo.toml")]
        if self.crate is not None:
            a += ["--ro-bind", str(self.crate), str(ROOT / "crate")]
        a += ["--size", str(256 << 20), "--perms", "1777", "--tmpfs", str(ROOT / "notebooks")]
        if runtime is not None:
            a += ["--ro-bind", str(runtime), str(runtime)]
        return with_parents(a)

    def env(self, threads):
        torch_lib = next(self.venv.glob("lib/python3*/site-packages/torch/lib"), None)
        env = {
            "PATH": f"{self.venv}/bin:{self.cargo}/bin:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/grading/home", "USER": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
            "RUSTUP_HOME": str(self.rustup), "CARGO_HOME": str(self.cargo), "CARGO_NET_OFFLINE": "true",
            "LD_LIBRARY_PATH": f"{self.std_dir}:{torch_lib}" if torch_lib else self.std_dir,
            "LIBTORCH_USE_PYTORCH": "1", "RUST_BACKTRACE": "0",
            "EVCXR_TMPDIR": str(self.build), "SALIENCY_LAB_HOME": str(self.home),
            "SALIENCY_LAB_EVCXR": str(self.evcxr), "SALIENCY_LAB_HAND_IN": "1",
            "SALIENCY_LAB_GRADING_CACHE": "/grading/cache", "JUPYTER_PATH": "/grading/home/no-spec",
            "SALIENCY_LAB_ROOT": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        }
        if os.environ.get("RUSTUP_TOOLCHAIN"):
            env["RUSTUP_TOOLCHAIN"] = os.environ["RUSTUP_TOOLCHAIN"]
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        return env

    def sandbox_argv(self, slot, threads, inner, cgroup=None, build_rw=None, runtime=None, unsafe_dir=None):
        """The command that runs `inner` in a sandbox, as a shell script (the
        cgroup is entered and the limits set before bwrap starts); the
        collector appends the connection file to it. Unsafe: `inner` as a
        plain process in the clone's notebooks/, on set-up's full crate, with
        a copy of set-up's warmed build folder."""
        env = self.env(threads)
        if self.unsafe:
            d = Path(unsafe_dir)
            env.update(HOME=str(d / "home"), EVCXR_TMPDIR=str(d / "evcxr"), TMPDIR=str(d / "tmp"),
                       SALIENCY_LAB_GRADING_CACHE=str(self.cache), JUPYTER_PATH=str(d / "home" / "no-spec"))
            setup = [f"export {k}={shlex_quote(v)}" for k, v in env.items()] + [f"cd {shlex_quote(str(ROOT / 'notebooks'))}"]
            return ["/bin/sh", "-c", " && ".join(setup) + ' && exec "$@"', "sh"] + inner
        b = bwrap()
        args = [b, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grading", "--clearenv"]
        if not self.root:
            uid = str(BASE_UID + slot)
            args += ["--unshare-user", "--uid", uid, "--gid", uid, "--cap-drop", "ALL"]
        for k, v in env.items():
            args += ["--setenv", k, v]
        # The root itself (bwrap's own tmpfs, holding the mount points) read-only.
        args += self.binds(runtime, build_rw) + ["--remount-ro", "/"]
        args += ["--chdir", str(ROOT / "notebooks"), "--"]
        if self.root:
            uid = BASE_UID + slot
            args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                     "--bounding-set=-all", "--no-new-privs", "--"]
        args += inner
        limits = ["prlimit", f"--fsize={FILE_SIZE}", "--core=0"]
        if cgroup is None:  # no cgroup: per-process limits instead
            limits += [f"--nproc={self.nproc_limit()}", f"--data={self.memory}"]
        # First in line for the kernel's OOM killer, before the grader.
        script = (cgroup.enter_command() if cgroup else []) + ["echo 1000 > /proc/self/oom_score_adj"] + \
            ['exec ' + " ".join(map(shlex_quote, limits + ["--"] + args)) + ' "$@"']
        return ["/bin/sh", "-c", " && ".join(script), "sh"]

    def worker_argv(self):
        """The collector's command: the grader's Python, in a network
        namespace of its own (inside a user namespace of its own where the
        grader is not root); a plain process when unsafe."""
        python = [sys.executable, str(WORKER)]
        if self.unsafe:
            return python
        userns = [] if self.root else ["--user", "--map-root-user"]
        return ["unshare"] + userns + ["--net", "--"] + python

    def nproc_limit(self):
        """RLIMIT_NPROC counts every process of the user: as root the
        sandbox's own user id has none besides; otherwise the instructor's
        running processes count too."""
        if self.root:
            return PROCESSES
        mine = sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == os.getuid())
        return mine + PROCESSES

    # -- running one ------------------------------------------------------------
    def run(self, job, slot=0, threads=None, timeout=900, build_rw=None):
        """Runs the collector on `job` (a dict: the mode, the notebook, its
        cells' limits, the tests) with a sandboxed kernel; returns (its
        report or None, note). The cells get `timeout` seconds together: the
        collector stops the kernel then and reports what it has. As a
        backstop, the collector itself, and with it the sandbox, is killed
        BACKSTOP seconds later (its kernel's start and stop); then the
        sandbox's cgroup, whatever is left."""
        import tempfile
        name = f"saliency-grading-{os.getpid()}-{slot}-{time.monotonic_ns()}"
        cgroup = None if self.unsafe else Cgroup.make(name, self.memory)
        # The connection file's folder: the collector's, bound read-only into the sandbox.
        runtime = Path(tempfile.mkdtemp(prefix="grading-kernel-"))
        runtime.chmod(0o755)
        unsafe_dir = None
        if self.unsafe:
            unsafe_dir = Path(tempfile.mkdtemp(prefix="grading-unsafe-"))
            for sub in ("home", "tmp"):
                (unsafe_dir / sub).mkdir()
        sandboxed = lambda inner: self.sandbox_argv(slot, threads, inner, cgroup, build_rw, runtime, unsafe_dir)
        if job.get("mode") in ("run", "warm"):
            job = dict(job, limits={**job.get("limits", {}), "notebook": timeout})
        job = dict(job, netns=not self.unsafe, runtime=str(runtime),
                   kernel=sandboxed(["/bin/sh", "-c", KERNEL_SCRIPT]),
                   probe=sandboxed([str(self.venv / "bin" / "python"), "-c", PROBE_SCRIPT]))
        proc = subprocess.Popen(self.worker_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        with self.live_lock:
            self.live.add(proc)
        out, err = bytearray(), bytearray()
        readers = [threading.Thread(target=_read_capped, args=(proc.stdout, out, OUTPUT_CAP), daemon=True),
                   threading.Thread(target=_read_capped, args=(proc.stderr, err, STDERR_CAP), daemon=True)]
        for r in readers:
            r.start()
        killed = False
        try:
            try:
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                proc.wait(timeout=timeout + BACKSTOP)
            except subprocess.TimeoutExpired:
                killed = True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
            with self.live_lock:
                self.live.discard(proc)
            if cgroup is not None:
                cgroup.remove()
            for d in (runtime, unsafe_dir):
                if d is not None:
                    shutil.rmtree(d, ignore_errors=True)
            for r in readers:
                r.join(timeout=10)
        stderr = err.decode(errors="replace")
        if killed:
            return None, f"the notebook did not finish within {timeout} s"
        if len(out) > OUTPUT_CAP:
            return None, f"the collector's report was over {OUTPUT_CAP >> 20} MB"
        try:
            return json.loads(out.decode()), ""
        except (ValueError, UnicodeDecodeError):
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"the collector gave no readable report (exit status {proc.returncode}; {last[:300]})"

    def check(self):
        """None if this machine can make the sandbox, else why not and what to do."""
        if self.unsafe:
            return None
        if bwrap() is None:
            return ("bubblewrap (bwrap) is not installed: run scripts/setup (it installs it), or "
                    "`apt install bubblewrap`")
        for tool in ("prlimit", "setpriv", "unshare"):
            if not shutil.which(tool):
                return f"{tool} (util-linux) is not on PATH"
        result, note = self.run({"mode": "probe"}, slot=0, timeout=60)
        seen = (result or {}).get("probe") or {}
        if not seen.get("sandboxed"):
            why = note or (result or {}).get("error") or result
            return (f"bubblewrap could not make a sandbox here ({why}). Unprivileged user namespaces "
                    "may be off: `sysctl kernel.unprivileged_userns_clone=1` (Debian), "
                    "`sysctl kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 24.04), or run the grader as root")
        return None

    # -- the crate as graded, and evcxr's cache warmed with it ---------------------
    def prepare(self, withhold, log=print):
        """Makes (once per version of the crate, of the withheld features and
        of set-up's warmed folder) the crate without the withheld features
        and evcxr's build folder warmed with it, in the sandbox's own layout.

        The folder starts as a copy of set-up's warmed one with everything
        built from the crate or from notebook cells taken out: the full
        crate's artifacts (which an added cell could otherwise put in place
        of the graded crate's) and earlier notebooks' compiled cells (the
        solution's among them). A check that no build record names a
        withheld file follows the warm-up."""
        if self.unsafe:  # no sandbox to put a crate copy in: set-up's full crate, as warmed
            self.cache = warm_folder()
            return
        self.crate = grading_crate(withhold)
        stamp = hashlib.sha256((CACHE_FORMAT + str(self.crate) + warm_stamp()).encode()).hexdigest()[:16]
        cache = self.home / "grading" / f"evcxr-{stamp}"
        if (cache / ".warmed").exists():
            self.cache = cache
            return
        log(f"preparing the grading crate (without: {', '.join(withhold) or 'nothing'}) and its build folder, "
            "once for this version of the crate: a minute or so ...")
        t0 = time.time()
        for old in (self.home / "grading").glob("evcxr-*"):
            # Other versions of the crate's; other homeworks' of this version stay.
            marker = old / ".crate"
            if not old.name.startswith("evcxr-tmp") and (not marker.exists() or marker.read_text() != crate_digest()):
                shutil.rmtree(old, ignore_errors=True)
        tmp = cache.with_name(cache.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(warm_folder(), tmp, symlinks=True, ignore=not_tools)
        if self.root and not self.unsafe:
            # Warmed by slot 0's user; the other slots' users copy it (readable by all).
            _chown_tree(tmp, BASE_UID, BASE_UID)
        result, note = self.run({"mode": "warm", "notebook": warm_notebook(), "limits": {"other": 600}}, slot=0,
                                timeout=1800, build_rw=tmp)
        problems = note if result is None else (result.get("error") or "; ".join(
            c["errors"] for c in result.get("cells", []) if c.get("errors")))
        if problems:
            raise SandboxUnavailable(f"warming evcxr's build folder for grading failed: {problems[:2000]}")
        leaked = withheld_in_build(tmp, withhold)
        if leaked:
            raise SandboxUnavailable(f"the grading build folder holds the withheld features' code: {leaked[:3]}")
        if self.root and not self.unsafe:
            _readable_tree(tmp)  # every slot's user copies it
        (tmp / ".warmed").write_text(json.dumps({"seconds": round(time.time() - t0)}))
        (tmp / ".crate").write_text(crate_digest())
        tmp.rename(cache)
        self.cache = cache
        log(f"grading build folder ready in {time.time() - t0:.0f} s")


def not_tools(folder, names):
    """What copying set-up's warmed build folder leaves behind: the notebook
    cells compiled there (evcxr's `ctx` crate and its `libcode_*`), their
    incremental state and sources, and everything built from the crate."""
    return [n for n in names
            if n in ("src", "incremental") or n.startswith(("libcode_", "ctx", "libctx"))
            or "saliency_lab" in n or "saliency-lab" in n]


MOUNTS = {"--ro-bind": 2, "--bind": 2, "--tmpfs": 1, "--symlink": 2, "--proc": 1, "--dev": 1}


def with_parents(args):
    """bwrap's arguments with the folders above each mount point made first,
    world-traversable: bwrap would otherwise copy the host's modes (root's
    home is 0700, which the sandbox's user could not enter)."""
    out, pending, made, i = [], [], {"/"}, 0
    while i < len(args):
        op = args[i]
        if op in ("--size", "--perms"):  # modifiers of the next mount
            pending += args[i:i + 2]
            i += 2
            continue
        take = 1 + {"--remount-ro": 1}.get(op, MOUNTS.get(op, 0))
        if op in MOUNTS:
            dest = Path(args[i + MOUNTS[op]])
            for parent in reversed(dest.parents):
                if str(parent) not in made:
                    out += ["--perms", "0755", "--dir", str(parent)]
                    made.add(str(parent))
            made.add(str(dest))
        out += pending + args[i:i + take]
        pending = []
        i += take
    return out


def physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


def _owner(p):
    try:
        return p.stat().st_uid
    except OSError:
        return None


def _chown_tree(path, uid, gid):
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _readable_tree(path):
    for dirpath, dirnames, filenames in os.walk(path):
        for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
            st = os.lstat(n)
            if not os.path.islink(n):
                os.chmod(n, st.st_mode | 0o444 | (0o111 if os.path.isdir(n) else 0))


def _read_capped(stream, buf, cap):
    while chunk := stream.read(65536):
        if len(buf) <= cap:
            buf += chunk[: cap + 1 - len(buf)]


def warm_stamp():
    w = lab_home() / ".warm"
    return w.read_text() if w.exists() else ""


