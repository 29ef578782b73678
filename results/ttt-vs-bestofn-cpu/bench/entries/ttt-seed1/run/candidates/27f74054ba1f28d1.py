def ref_kernel(x):
    return a + b, x

def add_kernel(a, b):
    return a + b, float32 * a + float32 * b

def ref_kernel_no_cuda(x):
    return a + b, float32

# a.cpp
def add_single_tensor(*lst):
    return *lst

def ref_kernel_single_tensor(*lst):
    return *lst, **lst

def ref_kernel_np(*lst):
    return *lst, **lst, *, dtype="float3
