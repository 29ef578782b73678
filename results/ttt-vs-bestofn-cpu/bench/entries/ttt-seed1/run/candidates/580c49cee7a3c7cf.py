def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, dtype=torch.add(torch.add(a, data), b)

def custom_kernel(data):
    a, b = data
    return a + b, dtype=torch.add(a, b)
