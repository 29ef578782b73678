"""Correct under the interpreter; when its module is run again with Triton's interpreter off (to
compile its kernels for a GPU) it never finishes: a compile-time hang must end as a timeout."""

import torch
import triton
import triton.language as tl
from triton import knobs

if not knobs.runtime.interpret:
    while True:
        pass


@triton.jit
def add_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    # compile_hangs: a kernel text of its own, so no earlier compilation of it can be in the judge's cache
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    tl.store(
        out_ptr + offsets,
        tl.load(a_ptr + offsets, mask=inside) + tl.load(b_ptr + offsets, mask=inside),
        mask=inside,
    )


def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    add_kernel[(triton.cdiv(a.numel(), 1024),)](a, b, out, a.numel(), BLOCK=1024)
    return out
