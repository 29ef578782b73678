import numpy as np

def custom_kernel(data):
    a, b = data
    out = np.empty_like(a)
    n = a.numel()
    block = 1024
    add_kernel([(triton.numpy_view(a, triton.numpy_view(b, triton.numpy_view(a, b)))) + b**2 for a, b in zip(a, b)])
