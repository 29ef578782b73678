def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data.shape[0]
    result = a + b
    return torch.add(a, b)

def ref_kernel_custom(data: tuple[torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, torch.add(a, b)

def ref_kernel_custom_custom(data: tuple[torch.Tensor]) -> torch.Tensor:
    return ref_kernel_custom_custom_custom_custom
