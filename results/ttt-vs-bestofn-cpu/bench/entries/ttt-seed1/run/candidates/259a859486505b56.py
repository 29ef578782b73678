def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return a + b  # ref_kernel(a, b) + b in the dtype

    def custom_kernel(x):
        return a + b  # ref_kernel(a, b) + b

    return ref_kernel(x)

def ref_kernel_custom():
    return n(ref_kernel)
