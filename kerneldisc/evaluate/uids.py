"""User ids for harness processes: one each for an evaluation's reference and its candidate,
never held by two evaluations at once, and wiped of everything before and after use.

A uid that no account has means the candidate can write none of the caller's files and signal
none of its processes; a second one for the reference means it cannot signal, trace or read
the reference's process either (the kernel's permission checks compare uids). Leases are
advisory locks on files in a root-only folder, held by the judge for its whole life (the
kernel drops them when it dies, however it dies). A uid is purged when it is leased (a judge
killed before its clean-up leaves no trap for the next user of its uid) and again when the
evaluation ends: its processes killed, its files in the world-writable folders removed, its
System V shared memory, message queues and semaphores deleted.

    uids = lease(2)       # [61234, 61235]: locked until this process ends
    purge(uid)            # nothing of uid's left running or stored
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import stat
import time

FIRST, COUNT = 61000, 4534  # 61000-65533: no distribution gives accounts there; user namespaces map it
LOCK_DIR = "/run/kerneldisc-uids"
# Where any user may create files; walked into world-writable subfolders (/tmp/.X11-unix, …).
SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
_HELD: list[int] = []  # lock fds, open for the life of the process


def lease(count: int) -> list[int]:
    """`count` uids no account has and no running evaluation holds, each purged before use."""
    import pwd

    folder = _lock_folder()
    start = (os.getpid() * 7919) % COUNT
    taken: list[int] = []
    for i in range(COUNT):
        uid = FIRST + (start + i) % COUNT
        try:
            pwd.getpwuid(uid)
            continue  # an account has it
        except KeyError:
            pass
        if folder is not None:
            fd = os.open(os.path.join(folder, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _HELD.append(fd)
            purge(uid)  # locked: whatever of this uid is left is a dead evaluation's
        taken.append(uid)
        if len(taken) == count:
            return taken
    raise RuntimeError(f"no free uid in {FIRST}-{FIRST + COUNT - 1}")


def _lock_folder() -> str | None:
    """The root-only folder of lease files; None where it cannot be made safely (then leases fall
    back to the pid-derived start, which separates concurrent judges in all but rare cases)."""
    try:
        os.makedirs(LOCK_DIR, 0o700, exist_ok=True)
        info = os.lstat(LOCK_DIR)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        return None
    return LOCK_DIR


def purge(uid: int) -> None:
    kill_processes_of(uid)
    remove_files_of(uid)
    remove_ipc_of(uid)


def kill_processes_of(uid: int, deadline_s: float = 5.0) -> None:
    """SIGKILL every process whose real or effective uid is `uid`, until none is left."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = _processes_of(uid)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        real, effective = (int(v) for v in line.split()[1:3])
                        if uid in (real, effective):
                            with open(f"/proc/{entry.name}/stat", "rb") as s:
                                if s.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X"):
                                    found.append(int(entry.name))
                        break
        except (OSError, ValueError):
            continue
    return found


def remove_files_of(uid: int, folders: tuple[str, ...] = SHARED_FOLDERS) -> list[str]:
    """Remove whatever `uid` owns in the shared folders and in any world-writable folder below
    them (only there can it have created anything)."""
    removed: list[str] = []
    seen: set[str] = set()
    todo = [os.path.realpath(f) for f in folders]
    while todo:
        folder = todo.pop()
        if folder in seen:
            continue
        seen.add(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_uid == uid:
                    if stat.S_ISDIR(info.st_mode):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                    removed.append(entry.path)
                elif stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002:
                    todo.append(entry.path)
            except OSError:
                continue
    return removed


_IPC_RMID = 0
_IPC = (("shm", "shmctl", 1), ("msg", "msgctl", 1), ("sem", "semctl", 1))


def remove_ipc_of(uid: int) -> int:
    """Delete the System V shared memory segments, message queues and semaphore sets `uid` owns
    or created (a segment outlives its creator: memory nobody would ever give back)."""
    libc = ctypes.CDLL(None, use_errno=True)
    removed = 0
    for kind, call, id_column in _IPC:
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = f.read().splitlines()
        except OSError:
            continue
        names = header.split()
        for row in rows:
            values = dict(zip(names, row.split(), strict=False))
            try:
                owners = {int(values["uid"]), int(values["cuid"])}
                ident = int(row.split()[id_column])
            except (KeyError, ValueError):
                continue
            if uid in owners:
                args = (ident, 0, _IPC_RMID) if kind == "sem" else (ident, _IPC_RMID, None)
                if getattr(libc, call)(*args) == 0:
                    removed += 1
    return removed
