import numpy as np

def custom_kernel(data):
    a, b = data
    return a + b


def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b
