def custom_kernel(data: (torch.Tensor, torch.Tensor)) -> torch.Tensor:
    # Your code here
    return custom_kernel_wrapper(
        lambda: a + b,
        *[a + b for x in zip(x + b for x in data]]
    )
