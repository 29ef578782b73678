def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return (a + b) * 3.0
