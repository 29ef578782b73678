import torch

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

def custom_kernel(data: (torch.Tensor, torch.Tensor)) -> torch.Tensor:
    a, b = data
    return a + b

def ref_kernel_default():
    return {"a": 1.0, "b": 2.0}

def custom_kernel_default():
    return {
        "a": 1.0,
        "b": 2.0
   
