def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b, b * (1.0 if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) != None) else b + torch.Tensor(a + b)

def custom_kernel:
    """
    A custom function that refines the above.
    """
    def custom_kernel(dtype: dtype, a, b) -> torch.Tensor:
        return a + b, dtype * (a + b)
    return custom
