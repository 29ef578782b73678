def ref_kernel(x):
    return a + b, float32 * (a + b), 2 * a + b, float32 * (a + b)

def add_kernel(a, b):
    row_a, row_b = a, b
    return a + b, float32 * (a + b), 2 * a + b, float32 * (a + b)

def ref_kernel(x):
    return a + b, 2 * a + b, 2 * a + b, 2 * a + b,
