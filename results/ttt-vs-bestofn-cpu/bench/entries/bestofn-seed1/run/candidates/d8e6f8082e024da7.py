# This is the start of your custom function
def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    block = 1024
    add_kernel([(triton.cdiv(n, block), a + b), a, b, n * n],
         a, b, out, n, BLOCK=block, num_workers=n)
