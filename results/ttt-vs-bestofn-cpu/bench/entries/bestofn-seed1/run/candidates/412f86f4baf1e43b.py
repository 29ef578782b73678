def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data.shape[0]
    result = a + b
    return result, torch.Tensor(dtype=dtype(dtype=a, dtype=dtype=a + b))

def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data.shape[0]
    result = a + b
    return result, torch.Tensor(dtype=dtype(dtype=a + b))
