def ref_kernel(x):
    return a + b, float32 * len(x)

def add_kernel(a, b):
    return ref_kernel(a + b)

def default_kernel(x):
    return a + b, float32 * len(x)
