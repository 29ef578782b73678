"""Returns the same 1 MB tensor three thousand times in a list: 3 GB for a judge that copied each."""

import torch

_buf = torch.zeros(270_000)


def custom_kernel(data):
    return [_buf] * 3000
