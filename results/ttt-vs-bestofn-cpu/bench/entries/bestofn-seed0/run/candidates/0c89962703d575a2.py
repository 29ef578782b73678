def custom_kernel(data):
    a, b = data
    return a + b

def custom_kernel_ref_kernel(data):
    a, b = data
    return a + b

def ref_kernel(a, b, out_ptr):
    a = tl.load(a, mask=None)
    b = tl.load(b, mask=None)
    return a + b

def add_kernel(a, b):
    return a + b.astype(torch.float32).view(torch.uint32)

def custom_
