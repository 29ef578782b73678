def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return (a + b).add(torch.add(1.0, 1.0))

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

def custom_kernel_gpu(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a = a + b.add(1.0)
    return a + b
