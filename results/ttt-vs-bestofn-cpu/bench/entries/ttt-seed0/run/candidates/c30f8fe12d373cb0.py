def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    for offset in range(n):
        a = a[offset:offset+n]
        b = b[offset:offset+n]
        tl.program_id(0) * n * block + tl.range(n) + tl.program_id(1) * block + tl.program_id(2) * offset + tl.program_id(3) * offset + tl.program_id(
