import torch

def custom_kernel(a: torch.Tensor, b: torch.Tensor, dtype: int = torch.FloatTensor, *args: int = 1) -> torch.Tensor:
    a, b = a, b.unsqueeze(1).chunk(1, 1)  # pre-reshape to 1 x 1 for easy comparison
    return a.add(b)  # Concatenation of a + b

def ref_kernel_custom_dtype(a: torch.Tensor, dtype: int = torch.FloatTensor) -> torch.Tensor:
    return
