import torch

def add_kernel(a, b):
    return a + b, float32 * a + float32 * b, float32 * (a + b)

def ref_kernel(x):
    return a + b, float32 * a + float32 * b, float32 * (a + b)

def add_kernel(a, b):
    return a, a + b, a + b, float32 * a + float32 * b, float32 * a + float32 * b, 0.0,
