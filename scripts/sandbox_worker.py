"""The collector: runs one graded notebook's cells on a Rust kernel that lives
in a sandbox (sandbox.py), and reports to the grader. It is the grader's own
process, outside the sandbox and out of the student's reach: the kernel runs
in a PID namespace of its own (it cannot see, signal, trace or open this
process), as another user where the grader is root, and shares with this
process only a network namespace of this process's own (loopback, where the
kernel's ZMQ ports are) and the connection file, read-only. What the
student's code prints reaches this process only as the kernel's output
messages; it decides nothing here but what those messages say.

Its job comes on stdin (JSON):
  {"mode": "run", "notebook": ..., "limits": {"cells": {grade_id: s}, "other": s, "notebook": s},
   "tests": [test ids], "kernel": [argv], "runtime": dir, "netns": bool}
`limits.notebook` bounds the cells' time together, from the first cell: at
it the kernel is stopped and what was collected so far is reported (the
grader kills this process only as a backstop, later, and then has nothing).
  {"mode": "warm", ...}: the same for evcxr's build folder (no tests)
  {"mode": "probe", "probe": [argv], "netns": bool}: is this a sandbox?
`kernel` starts the sandboxed kernel when the connection file's path is
appended; `runtime` is the folder for that file, which the sandbox sees
read-only. One JSON object goes to stdout at the end: each cell's report
(its errors and printed text, capped; timing; whether it timed out or its
process was killed), the hand-ins by test (handin.py's rules: a value counts
only while its own test's cell runs, once, before its outcome), and an error
if the kernel died or could not start.
"""
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handin import HandIns, clean, decode_report, records_in, without_records  # noqa: E402

TEXT_CAP = 1 << 20  # per cell and stream: what a cell prints past it is cut
REPORT_TEXT = 4096  # per cell, in the report
DEP_LIMIT = 900  # a `:dep` cell on a cold build folder compiles tch
START_LIMIT = 300  # the kernel's start: a copy of evcxr's build folder, then evcxr
MESSAGE_CAP = 48 << 20  # bytes of one output message (a hand-in line of a big tensor is 1.6 MB)
OUTCOME_WAIT = 5.0  # seconds a finished test cell's outcome line may trail its reply
# The figures the student's own cells draw, kept for the feedback page: per
# cell, in all, and the size of each (base64 text); grade.py re-encodes them.
FIGURES_PER_CELL, FIGURES_IN_ALL, FIGURE_CAP = 3, 12, 4 << 20
INTERRUPT_WAIT = 30.0  # seconds an interrupted cell gets to answer


def loopback_up():
    """Brings up `lo` in this process's fresh network namespace
    (`unshare --net` leaves it down): SIOCGIFFLAGS, then SIOCSIFFLAGS with
    IFF_UP."""
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, ifreq))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def client_class():
    from jupyter_client import BlockingKernelClient
    from jupyter_client.connect import channel_socket_types

    class Client(BlockingKernelClient):
        """A client whose sockets refuse messages over MESSAGE_CAP (a
        student's print of gigabytes would otherwise be held here whole)."""

        def _create_connected_socket(self, channel, identity=None):
            import zmq
            url = self._make_url(channel)
            sock = self.context.socket(channel_socket_types[channel])
            sock.linger = 1000
            sock.setsockopt(zmq.MAXMSGSIZE, MESSAGE_CAP)
            if identity:
                sock.identity = identity
            sock.connect(url)
            return sock

    return Client


class Kernel:
    """The sandboxed kernel and a client of it."""

    def __init__(self, argv, runtime):
        ports = free_ports(5)
        self.info = dict(zip(("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"), ports),
                         ip="127.0.0.1", transport="tcp", signature_scheme="hmac-sha256",
                         key=secrets.token_hex(32), kernel_name="rust")
        path = Path(runtime) / f"kernel-{secrets.token_hex(8)}.json"
        path.write_text(json.dumps(self.info))
        path.chmod(0o644)  # the sandbox's user reads it (its folder is the grader's, bound read-only)
        self.stderr, self.killed = bytearray(), False
        self.proc = subprocess.Popen(argv + [str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.kc = client_class()()
        self.kc.load_connection_info(self.info)
        self.kc.start_channels()

    def _read_stderr(self):
        while chunk := self.proc.stderr.read(65536):
            if len(self.stderr) < 65536:
                self.stderr += chunk[:65536 - len(self.stderr)]

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout):
        """True once the kernel answers a kernel_info request."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            msg_id = self.kc.kernel_info()
            end = min(deadline, time.monotonic() + 2)
            while time.monotonic() < end:
                try:
                    msg = self.kc.get_shell_msg(timeout=0.25)
                except queue.Empty:
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    self._drain(0.2)
                    return True
        return False

    def _drain(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                pass

    def stopped(self):
        """Why the kernel is gone, in a line: its exit status and the last
        line it wrote to stderr."""
        last = bytes(self.stderr).decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return f"the kernel stopped (exit status {self.proc.poll()}: {last[0][:300]})"

    def interrupt(self):
        self.kc.control_channel.send(self.kc.session.msg("interrupt_request", {}))

    def kill(self):
        if self.killed:
            return
        self.killed = True
        try:
            os.killpg(self.proc.pid, 9)
        except OSError:
            pass
        self.proc.wait()
        self.kc.stop_channels()


class Collector:
    """Runs the cells one by one, attributing each output message to the
    cell whose request it answers."""

    def __init__(self, kernel, tests):
        self.kernel, self.kc = kernel, kernel.kc
        self.handins = HandIns(tests)
        self.owner = {}  # request msg_id -> the cell's record
        self.current = None
        self.figures_left = FIGURES_IN_ALL

    def on_iopub(self, msg):
        parent = msg.get("parent_header", {}).get("msg_id")
        cell = self.owner.get(parent)
        in_cell = parent is not None and parent == self.current
        t, content = msg.get("msg_type"), msg.get("content", {})
        if t == "stream":
            text = str(content.get("text", ""))
            for record, why in records_in(text):
                if record is not None:
                    self.handins.take(record, cell["test"] if cell else None, in_cell)
                elif cell and cell["test"]:
                    cell["notes"].append(why)
            if cell is not None:
                key = "stderr" if content.get("name") == "stderr" else "stdout"
                if len(cell[key]) < TEXT_CAP:
                    cell[key] += without_records(text)[:TEXT_CAP - len(cell[key])]
        elif t == "error" and cell is not None:
            cell["errors"].append(f"{content.get('ename', '')}: {content.get('evalue', '')}".strip())
        elif t in ("display_data", "execute_result") and cell is not None:
            png = content.get("data", {}).get("image/png")
            cell["figures"] += png is not None
            if (cell.get("role") in ("answer", "added") and isinstance(png, str) and len(png) <= FIGURE_CAP
                    and len(cell["pngs"]) < FIGURES_PER_CELL and self.figures_left > 0):
                cell["pngs"].append(png)
                self.figures_left -= 1
        elif t == "status" and in_cell and content.get("execution_state") == "idle":
            cell["idle"] = True

    def pump(self, seconds):
        """Handles the output messages that arrive within `seconds`; returns
        the execute_reply of the running cell if one came."""
        end = time.monotonic() + seconds
        reply = None
        while True:
            try:
                while True:
                    self.on_iopub(self.kc.get_iopub_msg(timeout=0))
            except queue.Empty:
                pass
            try:
                msg = self.kc.get_shell_msg(timeout=0.02)
                if msg["parent_header"].get("msg_id") == self.current and msg["msg_type"] == "execute_reply":
                    reply = msg
            except queue.Empty:
                pass
            if reply is not None or time.monotonic() >= end:
                return reply
            try:
                self.on_iopub(self.kc.get_iopub_msg(timeout=0.02))
            except queue.Empty:
                pass

    def run_cell(self, source, meta, limit, hard_deadline=float("inf")):
        """Runs one cell: interrupted at `limit` seconds (then given
        INTERRUPT_WAIT to answer), the kernel stopped at once at
        `hard_deadline` (the notebook's, on time.monotonic())."""
        cell = {**meta, "stdout": "", "stderr": "", "errors": [], "figures": 0, "pngs": [], "notes": [], "idle": False,
                "ran": True, "timed_out": False, "killed": False, "seconds": None,
                "test": meta.get("id") if meta.get("role") == "test" else None}
        msg_id = self.kc.execute(source, store_history=True, allow_stdin=False, stop_on_error=False)
        self.owner[msg_id], self.current = cell, msg_id
        start = time.monotonic()
        deadline, interrupted, reply = start + limit, False, None
        while True:
            got = self.pump(0.2)  # (pumped after the reply too: its "idle" and last lines follow it)
            reply = reply or got
            if reply is not None and cell["idle"]:
                break
            if not self.kernel.alive():
                cell["errors"].append(self.kernel.stopped())
                break
            now = time.monotonic()
            if now > hard_deadline:
                cell["timed_out"] = True
                cell["errors"].append("the notebook's time ran out during this cell: the kernel was stopped")
                self.kernel.kill()
                break
            if now > deadline and not interrupted:
                cell["timed_out"], interrupted = True, True
                self.kernel.interrupt()
                deadline = now + INTERRUPT_WAIT
            elif now > deadline:
                cell["errors"].append("the cell did not answer its interrupt: the kernel was stopped")
                self.kernel.kill()
                break
        cell["seconds"] = time.monotonic() - start
        # A test's outcome line can trail its reply: the kernel sends the
        # cell's printed lines on another thread than its reply.
        test = cell["test"]
        if test and not cell["errors"] and self.kernel.alive():
            end = time.monotonic() + OUTCOME_WAIT
            while test not in self.handins.outcome and time.monotonic() < end:
                self.pump(0.1)
        self.current = None
        err = "\n".join(cell["errors"] + ([cell["stderr"]] if cell["stderr"].strip() else []))
        cell["killed"] = "signal: 9" in err and not cell["timed_out"]
        return cell


def limit_of(source, meta, limits):
    if source.lstrip().startswith(":dep"):
        return DEP_LIMIT
    return limits.get("cells", {}).get(meta.get("id"), limits.get("other", 60))


def report_of(cell):
    errors = "\n".join(cell["errors"] + ([cell["stderr"].strip()] if cell["stderr"].strip() else []))
    return {"role": cell.get("role", ""), "id": cell.get("id"), "errors": errors[:REPORT_TEXT],
            "stdout": cell["stdout"][:REPORT_TEXT], "seconds": cell["seconds"], "ran": cell["ran"],
            "timed_out": cell["timed_out"], "killed": cell["killed"], "figures": cell["figures"],
            "pngs": cell["pngs"], "after": cell.get("after"), "notes": cell["notes"][:10]}


def read_report(result, tests):
    """The collector's report, its cells' text made safe to print (the
    student's output), and its hand-ins decoded; None if it is not one."""
    if not isinstance(result, dict) or not isinstance(result.get("cells"), list):
        return None
    cells = []
    for c in result["cells"]:
        if not isinstance(c, dict):
            return None
        cells.append({
            "role": c.get("role") if isinstance(c.get("role"), str) else "",
            "id": c.get("id") if isinstance(c.get("id"), str) else None,
            "errors": clean(c.get("errors", ""))[:4096],
            "ran": bool(c.get("ran")), "timed_out": bool(c.get("timed_out")), "killed": bool(c.get("killed")),
            "seconds": c["seconds"] if isinstance(c.get("seconds"), (int, float)) else None,
            "after": c.get("after") if isinstance(c.get("after"), str) else None,
            "pngs": [x for x in c.get("pngs", [])[:3] if isinstance(x, str)] if isinstance(c.get("pngs"), list) else [],
        })
    return {"cells": cells, "error": clean(result.get("error") or "")[:300],
            "hand_in": decode_report(result.get("hand_in"), tests)}


def run(job):
    cells = job["notebook"]["cells"]
    try:
        kernel = Kernel(job["kernel"], job["runtime"])
    except OSError as e:
        return {"cells": [], "error": f"the kernel could not start: {e}", "hand_in": {}}
    collector = Collector(kernel, job.get("tests", []))
    reports, error = [], ""
    limits = job.get("limits", {})
    try:
        if not kernel.wait_ready(START_LIMIT):
            return {"cells": [], "error": f"the kernel did not start: {kernel.stopped()}", "hand_in": {}}
        notebook_limit = limits.get("notebook")
        hard_deadline = time.monotonic() + notebook_limit if notebook_limit else float("inf")
        for c in cells:
            meta = c.get("metadata", {}).get("grading", {})
            source = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
            if not kernel.alive() or time.monotonic() > hard_deadline:
                if time.monotonic() > hard_deadline:
                    error = error or f"the notebook did not finish within {notebook_limit:.0f} s"
                error = error or kernel.stopped()
                reports.append({"role": meta.get("role", ""), "id": meta.get("id"), "errors": "", "stdout": "",
                                "seconds": None, "ran": False, "timed_out": False, "killed": False,
                                "figures": 0, "notes": []})
                continue
            cell = collector.run_cell(source, meta, limit_of(source, meta, limits), hard_deadline)
            if time.monotonic() > hard_deadline:
                error = error or f"the notebook did not finish within {notebook_limit:.0f} s"
            reports.append(report_of(cell))
    finally:
        kernel.kill()
    return {"cells": reports, "error": error, "hand_in": collector.handins.report()}


def probe(job):
    out = subprocess.run(job["probe"], capture_output=True, timeout=60)
    try:
        return {"probe": json.loads(out.stdout.decode()[-4096:] or "{}")}
    except ValueError:
        return {"probe": None, "error": out.stderr.decode(errors="replace")[-300:]}


def main():
    result = os.fdopen(os.dup(1), "w")  # the grader's channel
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    job = json.loads(sys.stdin.read() or "{}")
    if job.get("netns"):
        loopback_up()
    out = probe(job) if job.get("mode") == "probe" else run(job)
    result.write(json.dumps(out))
    result.flush()


if __name__ == "__main__":
    main()
