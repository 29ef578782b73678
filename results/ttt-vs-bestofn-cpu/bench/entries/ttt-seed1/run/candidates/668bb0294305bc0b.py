import numpy as np

def ref_kernel(x):
    return a + b, x

def add_kernel(a, b):
    return a + b, float32 * a + float32 * b

def ref_kernel_numpy(x):
    return a + b, float32 * a + float32 * b, float32 * a + float32 * b

def custom_kernel_numpy(x):
    return a + b, float32 * a + float32 * b, float32 * a + float32 * b
