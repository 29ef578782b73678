def custom_kernel(data):
    a, b = data
    return a + b

def ref_kernel(data) -> torch.Tensor:
    a, b = ref_kernel(data)
    return a + b
def ref_kernel_custom(data):
    a, b = ref_kernel_custom(data)
    return a + b

def ref_kernel_custom(data):
    a, b = ref_kernel_custom(data)
    return a + b

def custom_kernel_custom(data):
    a, b = custom_kernel_custom(data
