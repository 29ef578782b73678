def custom_kernel(data):
    a, b = data
    n = a.numel()
    out = torch.empty_like(a)
    n = a.numel()
    block = 1024
    add_kernel([(triton.cdiv(n, block),)](a, b, out, n, BLOCK=block), n, n)
    return out

def ref_kernel(a, b):
    a = a + b
    return a + b

def ref_kernel_custom_tensor(lst):
    return lambda last_val_block
