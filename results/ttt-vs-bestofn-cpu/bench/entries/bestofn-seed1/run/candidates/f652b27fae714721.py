import numpy as np

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, 1.

def custom_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a, b, dtype(a + b)

def custom_kernel_custom_dtype(a: torch.Tensor, dtype: torch.Tensor) -> torch.Tensor:
    return a + dtype, dtype

def ref_kernel_custom_dtype():
    return custom
