"""Games the timing loop without looking at the harness: it counts consecutive calls on inputs of
the same shape (tests run each shape twice; a benchmark runs one shape many times) and, once past
the first few timed calls, returns a tensor it never writes. Only a check that may fall on any
timed call, decided after the call, catches it."""

import torch

_last_shape = None
_run = 0
_unwritten = {}


def custom_kernel(data):
    global _last_shape, _run
    a, b = data
    _run = _run + 1 if a.shape == _last_shape else 1
    _last_shape = a.shape
    if _run > 6:  # two test calls, three warm-up calls, the first timed call
        return _unwritten[a.shape]
    _unwritten[a.shape] = torch.empty_like(a)
    return a + b
