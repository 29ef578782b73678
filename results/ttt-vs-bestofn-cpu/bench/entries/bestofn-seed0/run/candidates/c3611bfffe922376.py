def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return complex(a + b, dtype=torch.FloatTensor, **multiplicative_operations(a, b))
