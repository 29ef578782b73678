def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    for i in range(n):
        a = a + b + i * (1024, n) % 1024 if i % 1024 == 0 else a + b + i
    return out
