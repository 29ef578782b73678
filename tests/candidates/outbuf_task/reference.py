"""A GPU MODE-style problem whose inputs carry the output buffer: data = (x, out)."""

import torch


def generate_input(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(size, generator=gen)
    return x, torch.empty_like(x)


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, out = data
    out[...] = torch.cumsum(x, dim=0)
    return out
