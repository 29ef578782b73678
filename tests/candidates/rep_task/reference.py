import torch


def generate_input(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen)


def ref_kernel(x):
    return x.repeat(64, 1) * 2.0
