def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, torch.add(a, b)

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, torch.add(a, b)

def ref_kernel_non_functional(data: tuple[torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, torch.add(a,
