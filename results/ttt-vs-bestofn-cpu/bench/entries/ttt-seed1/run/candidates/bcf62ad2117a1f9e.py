def custom_kernel(x):
    return a + b, float32 * add_kernel(x)
def ref_kernel(x):
    return a + b, float32 * ref_kernel(x)
def add_kernel(a, b):
    return a + b, a + b, -1.0

def cf_add_kernel(x):
    return a + b, float32 * ref_kernel(x)
def cf_add_kernel_recursive(x):
    return a + b, float32 * ref_kernel_recursive(
