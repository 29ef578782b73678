def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, dtype_ops.add(a, b)

def ref_kernel_custom(x: tuple[float32, float32]) -> float32:
    return x[1]
