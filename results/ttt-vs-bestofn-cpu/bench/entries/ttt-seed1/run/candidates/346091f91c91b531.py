def ref_kernel(x):
    return a + b, float32 * (a + b)

def add_kernel(a, b):
    return a + b, float32 * (a + b)
def ref_kernel(x):
    return a + b, float32 * (a + b)
def add_kernel_scalar(x):
    return x, 1.0
def ref_kernel_scalar(a):
    return a + 1, 1.0
def add_kernel_scalar_plus_1(x):
    return (x
