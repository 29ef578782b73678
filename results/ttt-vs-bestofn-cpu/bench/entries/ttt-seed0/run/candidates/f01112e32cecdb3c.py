def ref_kernel(a, b, out_ptr):
    a = a + b
    b = (a + b).relu().apply(lambda x: a + x)
    return a + b

def custom_kernel_ref_kernel(a, b):
    a = (a + b).relu().apply(lambda x: a + x)
    b = (b + a).relu().apply(lambda x: b + x)
    a = (a + b).relu().apply(lambda x: a + x)
    b = (b + a).relu().apply(lambda
