def ref_kernel(a, b):
    return a + b

def ref_kernel_ref_kernel(a, b):
    a = a.relu().apply(lambda x: a + x)
    b = b.relu().apply(lambda x: b + x)
    return a + b

def ref_kernel_ref_kernel_ref_kernel(a, b):
    a = (a + b).relu().apply(lambda x: a + x)
    b = (b + a).relu().apply(lambda x: b + x)

def ref_
