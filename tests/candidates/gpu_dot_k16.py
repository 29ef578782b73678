"""Correct for the hmm task, and a kernel the Hopper compiler accepts (K = 16)."""

import torch
import triton
import triton.language as tl


@triton.jit
def mm_kernel(a_ptr, b_ptr, c_ptr, n, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for k0 in range(0, n, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + rows[:, None] * n + ks[None, :])
        b = tl.load(b_ptr + ks[:, None] * n + cols[None, :])
        acc += tl.dot(a, b)
    tl.store(c_ptr + rows[:, None] * n + cols[None, :], acc.to(tl.float16))


def custom_kernel(data):
    a, b = data
    n = a.shape[0]
    c = torch.empty_like(a)
    mm_kernel[(n // 32, n // 32)](a, b, c, n, BLOCK=32, BLOCK_K=16)
    return c
