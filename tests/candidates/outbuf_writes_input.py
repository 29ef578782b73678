"""For outbuf_task: computes in place in the real input x (not the output buffer) and returns it."""

import torch


def custom_kernel(data):
    x, _ = data
    torch.cumsum(x, dim=0, out=x)
    return x
