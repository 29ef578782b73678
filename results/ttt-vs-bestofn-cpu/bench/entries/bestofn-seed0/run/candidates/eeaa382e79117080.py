def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return (a + b) * torch.add(a, b)
