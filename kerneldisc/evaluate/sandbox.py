"""Child processes the evaluator talks to: own session, resource limits, bounded output, deadlines.

A child gets two private pipes besides stdout/stderr: commands come in on one, JSON-line
replies go out on the other. Whatever the child prints lands in stdout/stderr, which are
drained by threads into bounded tails, so prints can neither forge a reply nor block or
exhaust the parent. Each child leads its own session, so on a deadline the whole process
group (including anything the candidate spawned) is killed at once.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_BYTES = 1 << 22
STOP_CHECK_S = 0.5  # how often a silent child is checked for being stopped (SIGSTOP)
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522
_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: preexec_fn only calls into it


# How an evaluator child starts: before anything of kerneldisc is imported, an import hook makes
# kerneldisc's modules and the task's own top-level modules (folders in KERNELDISC_SOURCE_ONLY)
# compile from source and never from a `__pycache__` file, which a candidate running as the same
# user could have planted to change the judge or the reference. (kerneldisc's sources themselves
# are hashed by integrity.py; the task's by Task.files_digest.) Then the module runs as `-m` would.
_BOOT = """
import importlib.machinery as m, os, runpy, sys

class SourceOnly(m.SourceFileLoader):
    def get_code(self, fullname):
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)

DIRS = tuple(d for d in os.environ.get("KERNELDISC_SOURCE_ONLY", "").split(os.pathsep) if d)

def ours(name, path):
    if name == "kerneldisc" or name.startswith("kerneldisc."):
        return True
    return path is None and any(
        os.path.isfile(os.path.join(d, name + ".py")) or os.path.isdir(os.path.join(d, name)) for d in DIRS)

class Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if not ours(name, path):
            return None
        spec = m.PathFinder.find_spec(name, path, target)
        if spec is not None and type(spec.loader) is m.SourceFileLoader:
            spec.loader = SourceOnly(spec.loader.name, spec.loader.path)
        return spec

sys.meta_path.insert(0, Finder)
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (from the child itself)."""
    parent = os.getppid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent == 1 or os.getppid() != parent:  # the parent was gone before the request took effect
        os._exit(1)


def not_dumpable() -> None:
    """Make this process non-dumpable: other processes of the same user (a candidate) can no
    longer read its memory, ptrace it or open its file descriptors through /proc/<pid>/fd.
    Reset by exec, so the children it starts are unaffected."""
    _libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def drop_capabilities() -> bool:
    """As root, give up every capability (bounding set included, so nothing this process execs
    regains one): the uid stays 0 and files stay readable, but the non-dumpable judge can no
    longer be ptraced or have its memory and pipes opened through /proc. Returns whether any
    were dropped; a process that is not root has none to drop."""
    if os.geteuid() != 0:
        return False
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for cap in range(64):  # past the kernel's last capability the call fails harmlessly
        _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two words each): none
    return _libc.capset(ctypes.byref(header), ctypes.byref(data)) == 0


def become_subreaper() -> None:
    """Orphans among this process's descendants (a candidate's daemonised helpers that left its
    process group) are reparented here instead of to init, so `kill_orphans` can find them."""
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_orphans(deadline_s: float = 5.0) -> int:
    """SIGKILL every child of this process, over and over, until none is left (a
    killed child's own children are reparented here in turn, and a helper that forks anew as
    fast as it can is caught between two forks). Returns how many are still alive at the
    deadline: 0 unless something outran the loop."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = _children()
        if not found:
            return 0
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in found:  # reap (a zombie is a child too until reaped)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if time.monotonic() > deadline:
            return len([pid for pid in _children() if _state(pid) not in (None, b"Z")])


def _children() -> list[int]:
    """This process's children: the kernel's per-thread lists when it has them (fast, so a
    fork-hopping helper is caught between two forks), else a scan of /proc."""
    me = os.getpid()
    try:
        pids: set[int] = set()
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children", "rb") as f:
                pids.update(int(p) for p in f.read().split())
        return sorted(pids)
    except (OSError, ValueError):
        pass
    pids_found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None and len(fields) > 1 and int(fields[1]) == me:
            pids_found.append(int(entry))
    return pids_found


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat after the command name (state, ppid, ...), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _state(pid: int) -> bytes | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


@dataclass
class Limits:
    """rlimits applied in the child before exec. `address_space` breaks CUDA, so GPU runs use `data`."""

    address_space_mb: int | None = None
    data_mb: int | None = None

    def apply(self) -> None:
        # Die with the process that started us: a killed judge must not leave a spinning orphan.
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.address_space_mb:
            size = self.address_space_mb << 20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if self.data_mb:
            size = self.data_mb << 20
            resource.setrlimit(resource.RLIMIT_DATA, (size, size))


class Tail:
    """Drains a pipe on a daemon thread, keeping only the last `limit` bytes."""

    def __init__(self, stream, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.total_bytes = 0
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            chunk = (
                self._stream.read1(1 << 16) if hasattr(self._stream, "read1") else self._stream.read(1 << 16)
            )
            if not chunk:
                break
            with self._lock:
                self.total_bytes += len(chunk)
                self._buf += chunk
                if len(self._buf) > 2 * self._limit:
                    del self._buf[: len(self._buf) - self._limit]
        self._stream.close()

    def text(self, join_timeout: float = 1.0) -> str:
        self._thread.join(join_timeout)
        with self._lock:
            data = bytes(self._buf[-self._limit :])
        prefix = (
            f"[... {self.total_bytes - len(data)} bytes cut ...]\n" if self.total_bytes > len(data) else ""
        )
        return prefix + data.decode("utf-8", errors="replace")


class ChildDied(Exception):
    """The child closed its reply channel (exited, crashed or was killed)."""


class ChildTimeout(Exception):
    """The child's deadline passed; it has been killed."""


class Child:
    """A child process with a command pipe, a reply pipe, bounded output tails and a deadline."""

    def __init__(
        self,
        module: str,
        extra_args: list[str],
        *,
        env: dict[str, str],
        cwd: str,
        deadline: float,
        limits: Limits | None = None,
        tail_bytes: int = 16000,
    ) -> None:
        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        argv = [sys.executable, "-c", _BOOT, module, "--cmd-fd", str(cmd_r), "--reply-fd", str(reply_w),
                *extra_args]  # fmt: skip
        self.deadline = deadline
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=cwd,
                pass_fds=(cmd_r, reply_w),
                start_new_session=True,
                preexec_fn=limits.apply if limits else None,
            )
        finally:
            os.close(cmd_r)
            os.close(reply_w)
        self._cmd = os.fdopen(cmd_w, "wb", buffering=0)
        self._reply_fd = reply_r
        self._pending = bytearray()
        self._peeked: dict[str, Any] | None = None
        self.stdout = Tail(self.proc.stdout, tail_bytes)
        self.stderr = Tail(self.proc.stderr, tail_bytes)
        self.timed_out = False
        self.was_stopped = False

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._cmd.write(json.dumps(message).encode() + b"\n")
        except (BrokenPipeError, OSError):
            raise ChildDied() from None

    def peek(self) -> dict[str, Any]:
        """The next reply, left in place for the next `recv`."""
        if self._peeked is None:
            self._peeked = self._read()
        return self._peeked

    def recv(self) -> dict[str, Any]:
        """The next reply; ChildDied on end of stream, ChildTimeout (after killing) at the deadline."""
        message, self._peeked = self._peeked, None
        return message if message is not None else self._read()

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._pending:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                self.timed_out = True
                raise ChildTimeout()
            ready, _, _ = select.select([self._reply_fd], [], [], min(remaining, STOP_CHECK_S))
            if not ready:
                if self.stopped():
                    # Same user: whoever stopped it (the candidate, with SIGSTOP) meant it to hang us.
                    self.kill()
                    raise ChildDied()
                continue
            chunk = os.read(self._reply_fd, 1 << 16)
            if not chunk:
                raise ChildDied()
            self._pending += chunk
            if len(self._pending) > MAX_MESSAGE_BYTES:
                raise ChildDied()
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        try:
            message = json.loads(line)
        except ValueError:
            raise ChildDied() from None
        if not isinstance(message, dict):
            raise ChildDied()
        return message

    def stopped(self) -> bool:
        """The child is stopped (SIGSTOP, SIGTSTP or a tracer): it cannot answer until continued."""
        state = _state(self.proc.pid)
        if state in (b"T", b"t"):
            self.was_stopped = True
        return state in (b"T", b"t")

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def close(self) -> None:
        """Kill whatever is left of the group and release the pipes."""
        if self.proc.poll() is None:
            self.kill()
        else:
            try:  # the leader exited; anything it left in its group goes too
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for close in (self._cmd.close, lambda: os.close(self._reply_fd)):
            try:
                close()
            except OSError:
                pass

    def exit_description(self) -> str:
        if self.was_stopped:
            return "was stopped (SIGSTOP) and killed"
        code = self.proc.poll()
        if code is None:
            return "still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}"
        return f"exited with code {code}"


class ParentLink:
    """The child's side of the two private pipes: commands in, JSON-line replies out."""

    def __init__(self, cmd_fd: int, reply_fd: int) -> None:
        self._cmd = os.fdopen(cmd_fd, "rb")
        self._reply = os.fdopen(reply_fd, "wb", buffering=0)

    def recv(self) -> dict[str, Any] | None:
        line = self._cmd.readline()
        return json.loads(line) if line else None

    def send(self, message: dict[str, Any]) -> None:
        self._reply.write(json.dumps(message).encode() + b"\n")

    def on_parent_gone(self, action) -> None:
        """Run `action` on a daemon thread once the parent closes the command pipe (it died or
        is done), for a child that expects no further commands."""

        def watch() -> None:
            while self._cmd.readline():
                pass
            action()

        threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def child_env(device: str, source_dirs: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for evaluator children: the project importable; the interpreter on the CPU;
    the task's folders whose modules load from source only (see _BOOT)."""
    env = dict(os.environ)
    if source_dirs:
        env["KERNELDISC_SOURCE_ONLY"] = os.pathsep.join(source_dirs)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    return env
