import torch

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, torch.add(a, b)

def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return ref_kernel(data)
