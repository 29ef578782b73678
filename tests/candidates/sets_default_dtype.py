"""Correct for float32 inputs, and sets torch's default dtype to float64 at import (which must not
change how the evaluator makes the inputs)."""

import torch

torch.set_default_dtype(torch.float64)


def custom_kernel(data):
    a, b = data
    assert a.dtype == torch.float32, f"inputs arrived as {a.dtype}"
    return a + b
