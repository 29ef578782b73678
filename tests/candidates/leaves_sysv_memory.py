"""Leaves what outlives a process: System V shared memory (touched, detached, never removed) and a
file in /run/lock, a world-writable folder besides /tmp."""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
for _ in range(4):
    ident = _libc.shmget(0, 16 << 20, 0o1000 | 0o600)
    if ident >= 0:
        address = _libc.shmat(ident, None, 0)
        ctypes.memset(address, 1, 16 << 20)
        _libc.shmdt(ctypes.c_void_p(address))
for folder in ("/run/lock", "/var/tmp"):
    try:
        with open(
            os.path.join(folder, os.environ.get("KERNELDISC_TEST_TOKEN", "kerneldisc-test-left")), "w"
        ) as f:
            f.write("left behind")
    except OSError:
        pass


def custom_kernel(data):
    a, b = data
    return a + b
