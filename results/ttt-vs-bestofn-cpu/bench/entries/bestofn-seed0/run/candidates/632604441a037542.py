def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    new_a = a + b
    return a + b, dtype(a + b)
