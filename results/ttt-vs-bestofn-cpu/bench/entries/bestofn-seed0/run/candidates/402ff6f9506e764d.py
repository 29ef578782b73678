def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

def custom_kernel(data: tuple[torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, torch.Tensor([a + b])

def ref_kernel_custom_by_dtype_2(data: tuple[float16, float32, float64]) -> torch.Tensor:
    a, b = data
    return a + b, torch.Tensor([a + b
