"""layernorm: LayerNorm over the last dimension with an affine weight and bias (eps 1e-5)."""

import torch
import torch.nn.functional as F

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
EPS = 1e-5


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def generate_input(rows: int, cols: int, dtype: str, seed: int) -> tuple[torch.Tensor, ...]:
    """x `[rows, cols]` ~ N(1, 2^2); weight ~ 1 + N(0, 0.1^2) and bias ~ N(0, 0.1^2), shape `[cols]`."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    device = _device()
    gen = torch.Generator(device=device).manual_seed(seed)
    x = 1.0 + 2.0 * torch.randn(rows, cols, device=device, generator=gen)
    weight = 1.0 + 0.1 * torch.randn(cols, device=device, generator=gen)
    bias = 0.1 * torch.randn(cols, device=device, generator=gen)
    return tuple(t.to(DTYPES[dtype]).contiguous() for t in (x, weight, bias))


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    # Statistics and the affine step in float32 whatever the storage dtype, one rounding at the end.
    x, weight, bias = data
    out = F.layer_norm(x.float(), (x.shape[-1],), weight.float(), bias.float(), EPS)
    return out.to(x.dtype)
