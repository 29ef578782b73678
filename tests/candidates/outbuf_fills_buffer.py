"""Correct for outbuf_task, as GPU MODE's own submissions are written: the answer goes into the
output buffer handed over in `data`, which is returned."""

import torch


def custom_kernel(data):
    x, out = data
    torch.cumsum(x, dim=0, out=out)
    return out
