import numpy as np

def custom_kernel(data):
    a, b = data
    out = np.empty_like(a)
    n = a.numel()
    block = 1024
    add_kernel[(triton.cdiv(n, block),)](a, b, out, n, BLOCK=block)
    return out

def ref_kernel(data):
    a, b = data
    return a + b, a + b
