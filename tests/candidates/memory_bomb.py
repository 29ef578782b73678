"""Allocates (and touches) memory until something gives."""

import torch

_hoard = []


def custom_kernel(data):
    while True:
        _hoard.append(torch.ones(256 << 20, dtype=torch.uint8))
