"""The caller's side of the evaluator's fork server (zygote.py): started once per process, on
first use, and asked for one judge per evaluation.

    judge = fork_server().spawn()      # a JudgeProcess: pipes to a fresh judge
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kerneldisc.evaluate.link import JUDGE_STATUS, LineReader, write_line
from kerneldisc.evaluate.sandbox import ChildDied, ChildTimeout, Tail, close_fds, describe_status, state

START_TIMEOUT_S = 300.0
_ROOT = str(Path(__file__).resolve().parents[2])

# The fork server starts isolated (`-I`: no current folder, PYTHONPATH or user site on sys.path;
# kerneldisc's own folder is appended after the installed packages), with an import hook that
# compiles kerneldisc's modules from source and never from a `__pycache__` file a candidate,
# running as the same user, could have planted. (kerneldisc's sources are hashed by integrity.py.)
_BOOT = """
import importlib.machinery as m, sys
root, fd = sys.argv[1], int(sys.argv[2])
if root not in sys.path:
    sys.path.append(root)

class SourceOnly(m.SourceFileLoader):
    def get_code(self, fullname):
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)

class Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "kerneldisc" and not name.startswith("kerneldisc."):
            return None
        spec = m.PathFinder.find_spec(name, path, target)
        if spec is not None and type(spec.loader) is m.SourceFileLoader:
            spec.loader = SourceOnly(spec.loader.name, spec.loader.path)
        return spec

sys.meta_path.insert(0, Finder)
from kerneldisc.evaluate import zygote
zygote.main(fd)
"""


class ForkServerError(RuntimeError):
    pass


class ForkServer:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = ours
        self._lock = threading.Lock()
        self._buffer = b""
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", _BOOT, _ROOT, str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(theirs.fileno(),),
            env=env,
            start_new_session=True,  # a Ctrl-C meant for the caller reaches it through the caller
        )
        theirs.close()
        self.stderr = Tail(os.dup(self.proc.stderr.fileno()), 8000)
        self.proc.stderr.close()
        self.owner = os.getpid()
        if self._line(time.monotonic() + START_TIMEOUT_S) != b"ready":
            raise ForkServerError(f"the evaluator's fork server did not start: {self.stderr.text()[-2000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None and state(self.proc.pid) not in (b"T", b"t", b"Z", None)

    def spawn(self) -> JudgeProcess:
        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        status_r, status_w = os.pipe()
        theirs = [cmd_r, reply_w, out_w, err_w, status_w]
        try:
            with self._lock:
                socket.send_fds(self.sock, [b"{}"], theirs)
                answer = self._line(time.monotonic() + 30.0)
            pid = int(json.loads(answer)["pid"])
        except (OSError, ValueError, KeyError, ForkServerError) as exc:
            for fd in (cmd_w, reply_r, out_r, err_r, status_r):
                os.close(fd)
            raise ForkServerError(f"the evaluator's fork server failed ({exc})") from None
        finally:
            for fd in theirs:
                os.close(fd)
        return JudgeProcess(pid, cmd_w, reply_r, out_r, err_r, status_r)

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise ForkServerError("no answer")
            ready, _, _ = select.select([self.sock], [], [], min(remaining, 1.0))
            if ready:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    raise ForkServerError("it closed its socket")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> ForkServer:
    """This process's fork server, started (or restarted, if something killed or stopped it) on
    first use."""
    global _server
    with _server_lock:
        if _server is not None and (_server.owner != os.getpid() or not _server.alive()):
            if _server.owner == os.getpid():
                _server.close()
            _server = None
        if _server is None:
            _server = ForkServer()
        return _server


class JudgeProcess:
    """Pipes to one judge (a child of the fork server, not of this process)."""

    def __init__(self, pid: int, cmd_w: int, reply_r: int, out_r: int, err_r: int, status_r: int) -> None:
        self.pid = pid
        self._cmd = cmd_w
        self._reply = reply_r
        self._status = status_r
        self._reader = LineReader(reply_r)
        self.stdout = Tail(out_r, 4000)
        self.stderr = Tail(err_r, 16000)
        self.status: int | None = None
        self.was_stopped = False

    def send(self, message: dict[str, Any]) -> None:
        write_line(self._cmd, message)

    def recv(self, deadline: float) -> dict[str, Any]:
        try:
            return self._reader.read(deadline, idle=self._check_stopped)
        except ChildTimeout:
            self.kill()
            raise

    def _check_stopped(self) -> None:
        if state(self.pid) in (b"T", b"t"):
            # Same user: whoever stopped it meant it to hang us.
            self.was_stopped = True
            self.kill()
            raise ChildDied()

    def wait_status(self, timeout: float) -> int | None:
        """The judge's wait status, as its fork server reports it once it has ended."""
        if self.status is None:
            ready, _, _ = select.select([self._status], [], [], max(timeout, 0.0))
            if ready:
                data = os.read(self._status, 4)
                if len(data) == 4:
                    self.status = JUDGE_STATUS.unpack(data)[0]
        return self.status

    def kill(self) -> None:
        if self.wait_status(0) is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        self.kill()
        close_fds(self._cmd, self._reply, self._status)

    def exit_description(self) -> str:
        if self.was_stopped:
            return "was stopped (SIGSTOP) and killed"
        return describe_status(self.wait_status(2.0))
