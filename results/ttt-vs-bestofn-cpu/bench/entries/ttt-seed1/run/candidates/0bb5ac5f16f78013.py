def ref_kernel(x):
    return a + b, float32 * x

def add_kernel(a, b):
    return a + b, a + b, 1

def custom_kernel(x):
    return a + b, 1

def ref_kernel(x):
    return a + b, 1

def add_kernel_fn(x):
    return 1, a + b, 1, 1, a + b, a + b, a + b, 1

def add_kernel_generator(x):
    return
