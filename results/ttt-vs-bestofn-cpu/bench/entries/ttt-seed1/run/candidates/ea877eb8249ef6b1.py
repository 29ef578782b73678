def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return a + b, dtype=torch.floating

def custom_kernel(inputs: list[None]) -> torch.Tensor:
    a, b = inputs
    return a + b, a + b, dtype=torch.floating
