def custom_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b, a + b
