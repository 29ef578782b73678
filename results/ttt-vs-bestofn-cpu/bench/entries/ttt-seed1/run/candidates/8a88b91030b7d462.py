def ref_kernel(x):
    return a + b, float32 * x + a, a, a, a, a

def add_kernel(a, b):
    row_a, row_b = a, b
    return a + b, float32 * (a + b) * a + a * a, a * a, a, a, a
