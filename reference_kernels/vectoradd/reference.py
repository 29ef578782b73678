"""vectoradd: elementwise sum of two 1-D tensors of the same length and dtype."""

import torch

DTYPES = {"float16": torch.float16, "float32": torch.float32}


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def generate_input(n: int, dtype: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two contiguous tensors of `n` elements drawn from N(0, 1), fully determined by the spec."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    device = _device()
    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(n, device=device, dtype=DTYPES[dtype], generator=gen)
    b = torch.randn(n, device=device, dtype=DTYPES[dtype], generator=gen)
    return a, b


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b
