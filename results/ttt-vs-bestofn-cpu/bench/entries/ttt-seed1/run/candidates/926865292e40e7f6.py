def custom_kernel(a, b):
    return a + b, a.dtype == torch.float32

def ref_kernel(x):
    return a + b, dtype=torch.float32, dtype=torch.float32, dtype=float16

def custom_kernel_res(x):
    return a + b, a.dtype == float32, a.dtype == float16, dtype=float32, dtype=float16
