def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, dtype=torch.add(1, dtype=torch.add(1, 1))
def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, dtype=torch.add(1, dtype=torch.add(1, 1))
def ref_kernel_custom():
    tensor_a = torch.tensor([1, 2
