def custom_kernel(data):
    a, b = data
    return a + b

def ref_kernel(data) -> torch.Tensor:
    a, b = data
    return a + b

def ref_kernel_custom_kernel(data):
    a, b = data
    return ref_kernel(a) + ref_kernel(b)

def ref_kernel_custom_kernel(data) -> torch.Tensor:
    a, b = data
    return ref_kernel_custom_kernel(a) + ref_kernel_custom_kernel(b)

def ref
