"""A small half-precision matrix product: Triton kernels for it meet tl.dot's shape rules."""

import torch


def generate_input(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, n, generator=gen).half(), torch.randn(n, n, generator=gen).half()


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return (a.float() @ b.float()).half()
