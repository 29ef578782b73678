def custom_kernel(data):
    a, b = data
    return a + b

def ref_kernel(x):
    return a + b, x

def add_kernel(a, b):
    row_a, row_b = a, b
    return a + b, float32(row_a + row_b) + 1, row_a + row_b * 2

def custom_kernel(data):
    a, b = data
    return a, a + b, a + b * 2, a + b

def ref_kernel
