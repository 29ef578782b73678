def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    for _ in range(n):
        b = tl.load(b_ptr + offsets, mask=inside)
        a = tl.load(a_ptr + offsets + b * offsets, mask=inside)
        n = n - 1
        a = a + b * b ** 2
        b = tl.load(b_ptr + offsets + b * offsets, mask=inside)
        a = a + tl.
