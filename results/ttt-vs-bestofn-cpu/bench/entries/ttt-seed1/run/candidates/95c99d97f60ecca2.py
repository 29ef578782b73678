def ref_kernel(x):
    return a + b * torch.ones_like(x) + torch.ones_like(a) * torch.ones_like(b), torch.add(a, b)
def custom_kernel(x):
    a, b = x
    return a + b, float32 * (a + b)

def add_kernel(a, b):
    row_a, row_b = a, b
    return a + b, float32 * (a + b)
