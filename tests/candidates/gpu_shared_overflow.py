"""Correct under Triton's interpreter (which ignores num_stages), but its software pipeline needs
more shared memory than a Hopper block may have: 9 stages of two 64x64 float32 tiles."""

import torch
import triton
import triton.language as tl


@triton.jit
def mm_kernel(a_ptr, b_ptr, c_ptr, n, BLOCK: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k0 in range(0, n, BLOCK):
        ks = k0 + tl.arange(0, BLOCK)
        a = tl.load(a_ptr + rows[:, None] * n + ks[None, :])
        b = tl.load(b_ptr + ks[:, None] * n + cols[None, :])
        acc += tl.dot(a, b, input_precision="ieee")
    tl.store(c_ptr + rows[:, None] * n + cols[None, :], acc)


def custom_kernel(data):
    a, b = data
    n = a.shape[0]
    c = torch.empty_like(a)
    mm_kernel[(n // 64, n // 64)](a, b, c, n, BLOCK=64, num_stages=9)
    return c
