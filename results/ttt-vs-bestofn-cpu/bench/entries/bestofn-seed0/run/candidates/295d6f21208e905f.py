def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.add(torch.gather(
        lambda x: x + torch.cumsum(x),
        (data,),
    ),

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

def ref_kernel_custom(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return ref_kernel(data)
