"""Starting candidate for layernorm: one Triton program per row, statistics in float32."""

import torch
import triton
import triton.language as tl


@triton.jit
def layernorm_row_kernel(x_ptr, w_ptr, b_ptr, out_ptr, n_cols, row_stride, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * row_stride + cols, mask=inside, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    centred = tl.where(inside, x - mean, 0.0)
    var = tl.sum(centred * centred, axis=0) / n_cols
    w = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    y = centred * (1.0 / tl.sqrt(var + eps)) * w + b
    tl.store(out_ptr + row * row_stride + cols, y.to(out_ptr.dtype.element_ty), mask=inside)


def custom_kernel(data):
    x, weight, bias = data
    x = x.contiguous()
    rows, cols = x.shape
    out = torch.empty_like(x)
    layernorm_row_kernel[(rows,)](
        x, weight, bias, out, cols, x.stride(0), 1e-5, BLOCK=triton.next_power_of_2(cols)
    )
    return out
