def ref_kernel(x):
    return a + b, x

def add_kernel(a, b):
    row_a, row_b = a, b
    return a + b, float32 * (a + b)

def ref_kernel(x):
    return a + b, float32 * (a + b), x

def add_kernel(a, b, value):
    return a + b, float32 * (a + b, a + b), a + b
