"""Starting candidate for vectoradd: one Triton program adds one block of elements."""

import torch
import triton
import triton.language as tl


@triton.jit
def add_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    a = tl.load(a_ptr + offsets, mask=inside)
    b = tl.load(b_ptr + offsets, mask=inside)
    tl.store(out_ptr + offsets, a + b, mask=inside)


def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    block = 1024
    add_kernel[(triton.cdiv(n, block),)](a, b, out, n, BLOCK=block)
    return out
