def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b
def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, a + b, a + b, a + b
def ref_kernel_custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return ref_kernel(custom_kernel(data))  # single line, faster, no kernel
   
