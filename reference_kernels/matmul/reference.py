"""matmul: C = A @ B for bfloat16 or float16 matrices, accumulated in float32."""

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def generate_input(m: int, n: int, k: int, dtype: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A `[m, k]` and B `[k, n]`, contiguous (row-major), entries ~ N(0, 1) in the spec's dtype."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    device = _device()
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(m, k, device=device, generator=gen).to(DTYPES[dtype])
    b = torch.randn(k, n, device=device, generator=gen).to(DTYPES[dtype])
    return a, b


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    # Products of 16-bit inputs are exact in float32; the sum is accumulated in float32 and
    # rounded once to the inputs' dtype, which is what a tensor-core GEMM does.
    a, b = data
    return (a.float() @ b.float()).to(a.dtype)
