def ref_kernel(a, b, out_ptr):
    a = a.relu().apply(lambda x: a + x)
    b = b.relu().apply(lambda x: b + x)
    a = (a + b).relu().apply(lambda x: a + x)
    b = (b + a).relu().apply(lambda x: b + x)

def custom_kernel(a, b):
    def custom_kernel(a, b):
        a = a.relu().apply(lambda x: a + x)
        b = b.relu().apply
