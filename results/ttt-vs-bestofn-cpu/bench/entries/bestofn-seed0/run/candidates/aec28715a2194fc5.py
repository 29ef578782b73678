def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, dtype=dtype(a)

def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, dtype=dtype(a)

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return astype_list(torch.add(a, b))
