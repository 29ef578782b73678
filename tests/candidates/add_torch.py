"""Correct and trivial: a + b with torch."""

import torch


def custom_kernel(data):
    a, b = data
    return torch.add(a, b)
