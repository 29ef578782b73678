def custom_kernel(data):
    return a + b
def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a = ref_kernel(data[0])
    return a + b

def ref_kernel_custom(data: tuple[torch.Tensor]) -> torch.Tensor:
    a = ref_kernel_custom(data[0])
    return a + b
def ref_kernel_custom(data: tuple[torch.Tensor]) -> torch.Tensor:
    a = ref_kernel_custom(data[0])
    return a
