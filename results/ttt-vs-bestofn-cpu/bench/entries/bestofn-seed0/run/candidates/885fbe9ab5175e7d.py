def custom_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.view(a.shape[1:])
    return a + b
