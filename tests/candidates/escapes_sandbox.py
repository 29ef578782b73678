"""Tries, at import, each way out of the judge's control: a new session or process group, more
CPUs, another process's memory, a new user namespace, io_uring. Each must fail; one that succeeds
makes the candidate raise (the verdict then says which). The kernel is honest."""

import ctypes
import os

import torch

_libc = ctypes.CDLL(None, use_errno=True)
_escaped = []
_GROUP, _SESSION = os.getpgid(0), os.getsid(0)


def _left(call):
    """Calls `call`; an OSError unless the process really left its group or session."""
    call()
    if (os.getpgid(0), os.getsid(0)) == (_GROUP, _SESSION):
        raise OSError("still in the group")


def _widened(cpus):
    """An OSError unless the process now really runs on more CPUs than before."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    if os.sched_getaffinity(0) == before:
        raise OSError("still on the same CPUs")


for label, attempt in (
    ("setsid", lambda: _left(os.setsid)),
    ("setpgid", lambda: _left(lambda: os.setpgid(0, 0))),
    ("sched_setaffinity", lambda: _widened(set(range(os.cpu_count() or 1)))),
    ("unshare", lambda: (_libc.unshare(0x10000000) == 0) or (_ for _ in ()).throw(OSError())),
    ("dumpable", lambda: (_libc.prctl(4, 1, 0, 0, 0) == 0) or (_ for _ in ()).throw(OSError())),
    ("judge memory", lambda: open(f"/proc/{os.getppid()}/mem", "rb").read(1)),
    ("io_uring_setup", lambda: (_libc.syscall(425, 8, ctypes.create_string_buffer(120)) >= 0)
     or (_ for _ in ()).throw(OSError())),
):  # fmt: skip
    try:
        attempt()
        _escaped.append(label)
    except OSError:
        pass
if _escaped:
    raise RuntimeError(f"escaped the sandbox: {', '.join(_escaped)}")


def custom_kernel(data):
    a, b = data
    return torch.add(a, b)
