import torch


def generate_input(count: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(4, generator=gen) for _ in range(count)]


def ref_kernel(xs):
    return torch.stack([x.sum() for x in xs])
