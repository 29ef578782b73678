"""Process-level building blocks of the evaluator: what a process may do to others, limits,
bounded output tails, and the judge's view of its descendants.

Nothing here imports torch. The judge (trusted) and the harness processes it forks use these;
the confinement of a harness process (`confine`) runs in the forked child before any candidate
code exists.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import stat
import threading
import time
from dataclasses import dataclass

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_CAP_VERSION_3 = 0x20080522
_PR_SET_KEEPCAPS = 8
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE = 47, 2
_CAP_DAC_READ_SEARCH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class ChildDied(Exception):
    """A process the evaluator talks to closed its pipe, exited or was killed."""


class ChildTimeout(Exception):
    """A process the evaluator talks to ran past its deadline; it has been killed."""


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (from the process itself:
    the parent must be single-threaded, or the signal fires when the forking thread ends)."""
    parent = os.getppid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent == 1 or os.getppid() != parent:  # the parent was gone before the request took effect
        os._exit(1)


def set_dumpable(dumpable: bool) -> None:
    """Whether other processes of the same user may read this process's memory, ptrace it or
    open its file descriptors through /proc/<pid>/fd. Reset by exec; inherited by fork."""
    _libc.prctl(_PR_SET_DUMPABLE, 1 if dumpable else 0, 0, 0, 0)


def not_dumpable() -> None:
    set_dumpable(False)


def has_ptrace_capability() -> bool:
    """Whether this process holds CAP_SYS_PTRACE (root, normally): it can then read the memory of
    processes that are not dumpable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 19))
    except (OSError, ValueError):
        pass
    return False


def drop_capabilities() -> bool:
    """As root, give up every capability (bounding set included, so nothing this process execs
    regains one): the uid stays 0 and files stay readable, but other processes can no longer be
    ptraced or have their memory and pipes opened through /proc. A process that is not root
    has none to drop."""
    if os.geteuid() != 0:
        return False
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for cap in range(64):  # past the kernel's last capability the call fails harmlessly
        _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (two words each): none
    return _libc.capset(ctypes.byref(header), ctypes.byref(data)) == 0


def become_reader(uid: int, keep_read: bool = True) -> None:
    """As root: become `uid` (a user that owns nothing). With `keep_read`, keep only
    CAP_DAC_READ_SEARCH, also across exec: read and search any file (Python, torch, compilers may
    live in root's home), write none but one's own. Every other capability, and uid 0, is gone."""
    _libc.prctl(_PR_SET_KEEPCAPS, 1 if keep_read else 0, 0, 0, 0)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    for cap in range(64):  # the bounding set: nothing else can come back
        if cap != _CAP_DAC_READ_SEARCH or not keep_read:
            _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    if not keep_read:
        return
    bit = 1 << _CAP_DAC_READ_SEARCH
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)(bit, bit, bit, 0, 0, 0)  # effective, permitted, inheritable
    if _libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, _CAP_DAC_READ_SEARCH, 0, 0)


def readable_by_anyone(paths: list[str]) -> bool:
    """Whether every folder on the way to each path, and each folder path itself, lets any user
    in (and list it): then a harness needs no read capability to load Python, torch and the task."""
    for path in paths:
        current = os.path.realpath(path)
        if not os.path.exists(current):
            continue
        chain = [current]
        while (parent := os.path.dirname(chain[-1])) != chain[-1]:
            chain.append(parent)
        for i, folder in enumerate(chain):
            try:
                mode = os.stat(folder).st_mode
            except OSError:
                return False
            need = 0o005 if i == 0 and stat.S_ISDIR(mode) else 0o001 if stat.S_ISDIR(mode) else 0o004
            if mode & need != need:
                return False
    return True


def become_subreaper() -> None:
    """Orphans among this process's descendants (helpers a candidate daemonised) are reparented
    here instead of to init, so they stay in view (`descendants`) and can be killed."""
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@dataclass
class Limits:
    """rlimits of a harness process. RLIMIT_AS breaks CUDA (the driver reserves huge virtual
    ranges), so GPU runs cap RLIMIT_DATA instead."""

    address_space_mb: int | None = None
    data_mb: int | None = None

    def apply(self) -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # No file it writes may outgrow its memory limit (4 GiB without one): a disk is not a
        # kernel's to fill. (How many files it writes is bounded by its time, not here.)
        size = (self.address_space_mb or self.data_mb or 4096) << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        for res, mb in ((resource.RLIMIT_AS, self.address_space_mb), (resource.RLIMIT_DATA, self.data_mb)):
            if mb:
                resource.setrlimit(res, (mb << 20, mb << 20))


def close_fds(*fds: int) -> None:
    """Close each descriptor, whether or not it is still open."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def keep_only_fds(keep: set[int]) -> None:
    """Close every file descriptor of this process except `keep` (right after fork)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


# --- the judge's view of processes -----------------------------------------------------------


def stat_fields(pid: int, tid: int | None = None) -> list[bytes] | None:
    """/proc/<pid>[/task/<tid>]/stat after the command name (state, ppid, pgrp, ...), or None."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def state(pid: int) -> bytes | None:
    fields = stat_fields(pid)
    return fields[0] if fields else None


def threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def children(pid: int, thread: int | None = None) -> list[int]:
    """The children of a process (or of one of its threads): the kernel's per-thread lists when
    it has them (fast), else a scan of /proc for processes whose parent it is."""
    found: set[int] = set()
    try:
        for tid in [str(thread)] if thread is not None else os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.update(int(p) for p in f.read().split())
        return sorted(found)
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        pass
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields is not None and len(fields) > 1 and int(fields[1]) == pid:
                found.add(int(entry))
    return sorted(found)


def descendants(roots: list[int]) -> list[int]:
    """Every live process below and including `roots` (zombies included until reaped)."""
    seen: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or state(pid) is None:
            continue
        seen.append(pid)
        todo.extend(children(pid))
    return seen


def kill_orphans(keep: frozenset[int] = frozenset(), deadline_s: float = 5.0) -> int:
    """SIGKILL every child of this process except `keep`, over and over, until none is left (a
    killed child's own children are reparented here in turn, and a helper that forks anew as
    fast as it can is caught between two forks). Returns how many are still alive at the
    deadline: 0 unless something outran the loop."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = [pid for pid in children(os.getpid()) if pid not in keep]
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
            return len([p for p in children(os.getpid()) if p not in keep and state(p) not in (None, b"Z")])


def describe_status(status: int | None) -> str:
    """A wait status in words: 'exited with code N' or 'killed by SIGNAME'."""
    if status is None:
        return "still running"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)}"
    return f"ended (wait status {status})"


class Tail:
    """Drains a pipe on a daemon thread, keeping only the last `limit` bytes."""

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.total_bytes = 0
        self._thread = threading.Thread(target=self._drain, daemon=True, name="kerneldisc-tail")
        self._thread.start()

    def _drain(self) -> None:
        try:
            while True:
                try:
                    chunk = os.read(self._fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                with self._lock:
                    self.total_bytes += len(chunk)
                    self._buf += chunk
                    if len(self._buf) > 2 * self._limit:
                        del self._buf[: len(self._buf) - self._limit]
        finally:
            os.close(self._fd)

    def text(self, join_timeout: float = 1.0) -> str:
        self._thread.join(join_timeout)
        with self._lock:
            data = bytes(self._buf[-self._limit :])
        cut = self.total_bytes - len(data)
        prefix = f"[... {cut} bytes cut ...]\n" if cut > 0 else ""
        return prefix + data.decode("utf-8", errors="replace")
