"""Correct for outbuf_task without using the buffer: a new tensor."""

import torch


def custom_kernel(data):
    x, _ = data
    return torch.cumsum(x, dim=0)
