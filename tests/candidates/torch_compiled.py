"""Correct: the add through torch.compile. Importing torch._dynamo rebinds torch.manual_seed to a
wrapper of itself, a library's change the evaluator's seal must tolerate."""

import torch


@torch.compile
def _add(a, b):
    return a + b


def custom_kernel(data):
    a, b = data
    return _add(a, b)
