import torch

def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    block = 1024
    add_kernel((a, b), (block,))
    return out
