"""Correct under the interpreter; when its module runs again to compile its kernels for a GPU, it
tries what a hostile compile-time expression could: signal the judge, write beside the task,
and end the compiling process. Each must end as a verdict, never reach the judge."""

import os
import signal

import torch
import triton
import triton.language as tl
from triton import knobs

if not knobs.runtime.interpret:
    for target in (os.getppid(), os.getpgid(0), 1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    try:
        with open("/tmp/kerneldisc-compile-mark", "w") as f:
            f.write("written at compile time")
    except OSError:
        pass
    os._exit(0)


@triton.jit
def add_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    # compile_side_effects: a kernel text of its own, so no earlier compilation of it can be in the judge's cache
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
