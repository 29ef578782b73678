import numpy as np

def add_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    a, b = np.array(a_ptr), np.array(b_ptr)
    a = np.add(a, b)
    out = np.empty_like(a, dtype=np.float32) + np.add(np.multiply(np.empty_like(b, dtype=np.float32), np.empty_like(a, dtype=np.float32)), dtype=
