"""A CPU-sized matrix product for the evaluator's tests: enough work per call (about a
millisecond) that a candidate doing it out of sight of the judge would look many times faster."""

import torch


def generate_input(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a @ b
