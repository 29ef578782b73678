def ref_kernel(x):
    return a + b, x

def add_kernel(a, b):
    return a + b, float32 * a + float32 * b
