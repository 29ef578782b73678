def ref_kernel_ref_kernel(data):
    a, b = data
    return a + b

def custom_kernel(data):
    a, b = data
    return a + b

def ref_kernel_ref_kernel(data):
    a, b = data
    return a + b

def ref_kernel_ref_kernel(data):
    a, b = data
    return a + b

def custom_kernel_ref_kernel(data):
    a, b = data
    return a + b

def ref_kernel_ref_kernel(data):
   
