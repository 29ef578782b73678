"""Correct, and sets torch's default device at import (a TorchFunctionMode torch itself pushes):
not a hook the guards should hold against it."""

import torch

torch.set_default_device("cpu")


def custom_kernel(data):
    a, b = data
    return a + b
