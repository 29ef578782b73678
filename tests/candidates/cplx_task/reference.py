"""Complex vectors for the evaluator's tests: out = conj(a + b)."""

import torch


def generate_input(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(size, dtype=torch.complex64, generator=gen),
            torch.randn(size, dtype=torch.complex64, generator=gen))  # fmt: skip


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return torch.conj_physical(a + b)
