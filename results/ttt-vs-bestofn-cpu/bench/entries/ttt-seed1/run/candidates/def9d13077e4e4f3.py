def ref_kernel(values):
    return torch.add(torch.tensor((a + b) * torch.tensor), values)

def custom_kernel(data):
    return torch.add(a + b, torch.tensor)
def add(x, y):
    return x + y, (a + b) / 2.0, (x + y) // 2.0, a, b

def default_kernel():
    return custom_kernel(torch.tensor([1, 2, 3]))
