def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a = a + b  # todo: implement code
