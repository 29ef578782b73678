def ref_kernel(x):
    return torch.add(x, torch.add(x))

def add_kernel(a, b):
    return a + b, *[torch.add(a, b) for a, b in zip(x, x)])

def ref_kernel(x):
    return a + b, *[x, float32 * x]

def custom_kernel(x):
    return add_kernel(x), *[x, float32 * x]
