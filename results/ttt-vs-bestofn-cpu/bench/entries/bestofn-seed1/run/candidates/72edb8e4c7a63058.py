def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return a + b
def custom_kernel(data: torch.Tensor) -> torch.Tensor:
    a, b = data
    return a + b

def ref_kernel(data: torch.Tensor) -> torch.Tensor:
    a, b = data
    return a + b

def custom_kernel(data: torch.Tensor) -> torch.Tensor:
    a, b = data
    return a + b

def ref_kernel(data: torch.Tensor) -> torch
