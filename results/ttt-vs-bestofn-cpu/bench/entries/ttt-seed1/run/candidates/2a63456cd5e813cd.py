def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, float32 * a + float32 * b

def add_kernel(a: float32, b: float32) -> float32:
    return a + b, float32 * a + float32 * b

def ref_kernel(x):
    return a + b, float32 * a + float32 * b

def add_kernel(a: float32, b: float
