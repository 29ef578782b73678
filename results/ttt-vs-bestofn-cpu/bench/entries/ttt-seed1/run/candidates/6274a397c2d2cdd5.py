def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.add(a, b)

def custom_kernel(x: torch.Tensor) -> torch.Tensor:
    return x + torch.tensor([x])
