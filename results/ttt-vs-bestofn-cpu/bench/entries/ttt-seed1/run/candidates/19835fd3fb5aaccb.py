import torch

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return torch.add(a + b, torch.tensor(a + b))

def custom_kernel(a, b) -> torch.Tensor:
    return a + b
