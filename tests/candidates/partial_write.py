"""Partly written: only the first half of the output is computed."""

import torch


def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    half = a.numel() // 2
    out[:half] = a[:half] + b[:half]
    return out
