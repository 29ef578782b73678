import torch

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b + torch.tensor([torch.Tensor.add(torch.Tensor.mul(a, b),
                                                                  dtype=torch.float32), dtype=torch.float32])

def custom_kernel(data: torch.Tensor, dtype=torch.float32,
                      added_data_type=torch.float32,
                      *args,
                      **kwargs) -> torch.Tensor:
    a, b =
