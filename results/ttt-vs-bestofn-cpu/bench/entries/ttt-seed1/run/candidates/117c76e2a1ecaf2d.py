import torch

def ref_kernel(x):
    return a + b, float32 * row_a + float32 * row_b
def add_kernel(a, b):
    return a, b, float32
def ref_kernel(x):
    return a + b, float32 * row_a + float32 * row_b
def add_kernel(x, y):
    return a + b, float32 * row_a + float32 * row_b, y
def ref_kernel(x):
    return a + b, float
