def ref_kernel(a, b, out_ptr):
    a = (a + b).relu().apply(lambda x: a + x)
    b = (b + a).relu().apply(lambda x: b + x)
    a = (a + b).relu().apply(lambda x: a + x)
    b = (b + a).relu().apply(lambda x: b + x)

def custom_kernel(data):
    a, b = data
    return a + b

def custom_kernel_ref_kernel(data):
    a, b = data
