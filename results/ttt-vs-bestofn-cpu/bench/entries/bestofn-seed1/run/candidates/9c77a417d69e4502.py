def custom_kernel(values):
    return torch.add(torch.tensor((a + b) * torch.tensor((1,)), dtype=torch.float32), scalars=(1,))

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b
