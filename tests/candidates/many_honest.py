"""Honest: sums a list of 800 small tensors at once (the command that describes the inputs is
larger than a pipe's buffer)."""

import torch


def custom_kernel(xs):
    return torch.stack(xs).sum(dim=1)
