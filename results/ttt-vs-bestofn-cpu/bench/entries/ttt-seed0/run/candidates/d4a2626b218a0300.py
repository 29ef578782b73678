def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return (a + b).add(a + b).view(1).grad(a + b).view_x(1).to_torch().view_x()
