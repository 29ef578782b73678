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
    return custom_kernel(a) + custom_kernel_kernel(b)

# Example of a kernel that uses a function
def custom_kernel_kernel(func):
    def outer_func
