def ref_kernel(x):
    return a + b, float32 * (a + b)

def add_kernel(a, b):
    row_a, row_b = a, b
    return a, float32 * (a + b) + b, a, dtype(a + b)

def custom_kernel(x):
    return a + b, float32 * (a + b), 1.0  # preserving the original values of a and b

def ref_kernel(x):
    return a + b, float32 * (a
