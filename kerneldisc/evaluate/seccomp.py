"""The system calls a candidate's process may not make, enforced by the kernel (seccomp-bpf).

The judge stops the candidate's whole process group between calls, charges the CPU time of
every process in it and reads its outputs from its memory. That holds only while the
candidate cannot leave the group, widen the one CPU it is pinned to, hide its memory from the
judge, signal or slow the evaluator's own processes, or have the kernel work for it while it
is stopped. The filter is installed in the candidate's process before any candidate code
exists; it is inherited by every thread and child and survives exec, and Python code cannot
remove it. Denied calls fail with EPERM (clone3 with ENOSYS, so the C library falls back to
clone, whose flags are checked); setsid, setpgid and sched_setaffinity pretend to succeed and
change nothing.

    install(own_pid) -> bool    # False where seccomp or the architecture is not supported
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_X32_BIT = 0x40000000

# BPF opcodes: load word at absolute offset, conditional jumps on a constant, return.
_LD = 0x20
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45
_RET = 0x06
# Offsets in struct seccomp_data: nr, arch, then six 64-bit arguments (low word first).
_NR, _ARCH = 0, 4


def _arg(i: int) -> int:
    return 16 + 8 * i


# Namespace flags of clone(): a new PID or user namespace would take processes out of reach.
_CLONE_NEW_ANY = 0x7E020080
_PR_SET_DUMPABLE = 4
_SIGCHLD = 17  # x86-64 and aarch64 alike
_FCNTL_SIGNALLING = (8, 10, 15)  # F_SETOWN, F_SETSIG, F_SETOWN_EX: signals to any process
_IOCTL_SIGNALLING = (0x8901, 0x8902)  # FIOSETOWN, SIOCSPGRP


class _Arch:
    def __init__(self, audit: int, x32: bool, nr: dict[str, int]) -> None:
        self.audit, self.x32, self.nr = audit, x32, nr


_NAMES = (
    "sched_setaffinity setsid setpgid ptrace process_vm_readv process_vm_writev prctl unshare setns clone "
    "clone3 io_uring_setup io_uring_enter io_uring_register io_setup io_submit perf_event_open kill tkill "
    "tgkill rt_sigqueueinfo rt_tgsigqueueinfo pidfd_open pidfd_getfd sched_setscheduler sched_setattr "
    "sched_setparam setpriority prlimit64 migrate_pages move_pages process_madvise process_mrelease kcmp "
    "userfaultfd fcntl ioctl open_by_handle_at name_to_handle_at rt_sigaction pidfd_send_signal"
).split()
_X86_64 = (203, 112, 109, 101, 310, 311, 157, 272, 308, 56, 435, 425, 426, 427, 206, 209, 298, 62, 200, 234,
           129, 297, 434, 438, 144, 314, 142, 141, 302, 256, 279, 440, 448, 312, 323, 72, 16, 304, 303, 13, 424)  # fmt: skip
_AARCH64 = (122, 157, 154, 117, 270, 271, 167, 97, 268, 220, 435, 425, 426, 427, 0, 2, 241, 129, 130, 131,
            138, 240, 434, 438, 119, 274, 118, 140, 261, 238, 239, 440, 448, 272, 282, 25, 29, 265, 264, 134, 424)  # fmt: skip
_ARCHES = {
    "x86_64": _Arch(0xC000003E, True, dict(zip(_NAMES, _X86_64, strict=True))),
    "aarch64": _Arch(0xC00000B7, False, dict(zip(_NAMES, _AARCH64, strict=True))),
}

# Never needed by a kernel; each would let the candidate escape the judge's view or control.
_DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",  # other processes' memory
    "pidfd_send_signal",  # a signal through a pidfd (an open /proc/<pid>), whatever the pid rule says
    "unshare", "setns",  # new namespaces
    "io_uring_setup", "io_uring_enter", "io_uring_register", "io_setup", "io_submit",  # kernel work
    "perf_event_open", "userfaultfd",  # after a stop; userfaultfd could stall the judge's reads
    "process_madvise", "process_mrelease", "migrate_pages", "move_pages",
    "open_by_handle_at", "name_to_handle_at",  # with the read capability: files outside its mounts
)  # fmt: skip
# SIGCHLD ignored (or SA_NOCLDWAIT) makes the kernel reap children as they exit, and their CPU
# time then reaches no counter the judge reads: a candidate may not change SIGCHLD's action.
# Calls whose first argument names a process: only its own group, itself and processes newer
# than itself (its threads and children) may be named, never the judge, the reference's worker
# or any other process the evaluator started before it.
_PID_FIRST = ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open",
              "sched_setscheduler", "sched_setattr", "sched_setparam", "prlimit64")  # fmt: skip


class _Program:
    """A tiny assembler: instructions with symbolic forward jump targets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, object, object, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int = 0, jt: object = 0, jf: object = 0) -> None:
        self.code.append((code, jt, jf, k & 0xFFFFFFFF))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = b""
        for i, (code, jt, jf, k) in enumerate(self.code):
            offsets = [self.labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
            if any(not 0 <= o <= 255 for o in offsets):
                raise ValueError("seccomp program jump out of range")
            out += struct.pack("=HBBI", code, offsets[0], offsets[1], k)
        return out


def build(
    own_pid: int, arch_name: str | None = None, lock_sigchld: bool = True, protected: tuple[int, ...] = ()
) -> bytes | None:
    """The filter program for a process whose pid (and process group) is `own_pid`. With
    `lock_sigchld`, SIGCHLD's action may not change (see below). `protected` pids are never
    named, whatever their number: after the pid counter wraps around, the judge or the
    reference's worker can have a larger pid than the candidate ("newer" by number only)."""
    arch = _ARCHES.get(arch_name or platform.machine())
    if arch is None:
        return None
    nr = arch.nr
    p = _Program()
    p.op(_LD, _ARCH)
    p.op(_JEQ, arch.audit, 0, "deny")
    p.op(_LD, _NR)
    if arch.x32:
        p.op(_JGE, _X32_BIT, "deny", 0)
    for name in _DENIED:
        p.op(_JEQ, nr[name], "deny", 0)
    # Leaving the process group the judge stops as one: pretended, not refused, so tools that
    # start their children in a group of their own (ninja's posix_spawn, start_new_session) work,
    # their children staying in this group.
    p.op(_JEQ, nr["setsid"], "pretend", 0)
    p.op(_JEQ, nr["setpgid"], "pretend", 0)
    # Widening the one CPU its calls run on: pretended as well (thread pools that pin themselves
    # keep working; the CPU time of every thread is charged however many there are).
    p.op(_JEQ, nr["sched_setaffinity"], "pretend", 0)
    p.op(_JEQ, nr["clone3"], "nosys", 0)
    p.op(_JEQ, nr["clone"], "clone", 0)
    p.op(_JEQ, nr["prctl"], "prctl", 0)
    p.op(_JEQ, nr["setpriority"], "setpriority", 0)
    p.op(_JEQ, nr["fcntl"], "fcntl", 0)
    p.op(_JEQ, nr["ioctl"], "ioctl", 0)
    if lock_sigchld:
        p.op(_JEQ, nr["rt_sigaction"], "sigaction", 0)
    for name in _PID_FIRST:
        p.op(_JEQ, nr[name], "pid0", 0)
    p.op(_RET, _RET_ALLOW)

    p.label("clone")
    p.op(_LD, _arg(0))
    p.op(_JSET, _CLONE_NEW_ANY, "deny", "allow")
    p.label("prctl")
    p.op(_LD, _arg(0))
    p.op(_JEQ, _PR_SET_DUMPABLE, "deny", "allow")  # the judge reads this process's memory
    p.label("setpriority")  # setpriority(which, who, prio): PRIO_PROCESS of an allowed pid only
    p.op(_LD, _arg(0))
    p.op(_JEQ, 0, 0, "deny")
    p.op(_LD, _arg(1))
    p.op(_JEQ, 0, "allow", "pid_check")
    p.label("fcntl")
    p.op(_LD, _arg(1))
    for cmd in _FCNTL_SIGNALLING:
        p.op(_JEQ, cmd, "deny", 0)
    p.op(_RET, _RET_ALLOW)
    p.label("ioctl")
    p.op(_LD, _arg(1))
    for cmd in _IOCTL_SIGNALLING:
        p.op(_JEQ, cmd, "deny", 0)
    p.op(_RET, _RET_ALLOW)
    p.label("sigaction")  # SIGCHLD's disposition stays: children are reaped by wait, counted
    p.op(_LD, _arg(0))
    p.op(_JEQ, _SIGCHLD, 0, "allow")
    p.op(_LD, _arg(1))  # the new action: NULL (only asking) is fine
    p.op(_JEQ, 0, 0, "deny")
    p.op(_LD, _arg(1) + 4)
    p.op(_JEQ, 0, "allow", "deny")
    p.label("pid0")
    p.op(_LD, _arg(0))
    p.label("pid_check")  # the accumulator holds a pid_t: 0, its own group, or >= own pid
    p.op(_JEQ, 0, "allow", 0)
    p.op(_JEQ, -own_pid, "allow", 0)
    p.op(_JGE, 0x80000000, "deny", 0)  # any other negative value: another group, or -1 (all)
    for pid in protected:
        if pid > 0 and pid != own_pid:
            p.op(_JEQ, pid, "deny", 0)
    p.op(_JGE, own_pid, "allow", "deny")
    p.label("allow")
    p.op(_RET, _RET_ALLOW)
    p.label("pretend")
    p.op(_RET, _RET_ERRNO | 0)  # returns 0 and does nothing
    p.label("nosys")
    p.op(_RET, _RET_ERRNO | errno.ENOSYS)
    p.label("deny")
    p.op(_RET, _RET_ERRNO | errno.EPERM)
    return p.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install(own_pid: int | None = None, lock_sigchld: bool = True, protected: tuple[int, ...] = ()) -> bool:
    """Install the filter on this thread (and so on everything it starts from now on). Call it
    while the process is single-threaded. False when it could not be installed. Every ancestor
    of this process (the judge, the fork server, the caller) is protected, with `protected`."""
    program = build(
        own_pid if own_pid is not None else os.getpid(), lock_sigchld=lock_sigchld,
        protected=tuple(sorted({*ancestors(), *protected}))[:64],
    )  # fmt: skip
    if program is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_char_p))
    return libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0


def ancestors() -> list[int]:
    """This process's parent, its parent's parent, ... up to (not including) init."""
    found: list[int] = []
    pid = os.getppid()
    while pid > 1 and len(found) < 32:
        found.append(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            pid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def active(pid: int) -> bool:
    """Whether a seccomp filter is in force for `pid` (read from /proc by the judge)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split() == ["Seccomp:", "2"] for line in f)
    except OSError:
        return False
