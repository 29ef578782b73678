def custom_kernel(x):
    return a + b, float32 * row_a + float32 * row_b

def ref_kernel(x):
    return a + b, float32, float32 * row_a + float32 * row_b

def add_kernel(a, b):
    row_a, row_b = a, b
    return a + b, float32 * (row_a + row_b)
