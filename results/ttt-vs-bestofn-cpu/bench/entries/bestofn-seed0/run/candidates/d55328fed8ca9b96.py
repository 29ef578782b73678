def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    new_a, new_b = data
    return (a + b) * a + b, a + b
