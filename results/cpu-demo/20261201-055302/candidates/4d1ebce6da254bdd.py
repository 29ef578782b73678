# Example of a custom kernel, adding a scalar
def custom_kernel(data):
    a, b = data
    out = torch.zeros_like(a)
    n = a.numel()
    for i in range(n):
        a = a + b
    return out

# Example of a kernel that uses an argument
def custom_kernel_kernel():
    a, b = data
    return a + b
