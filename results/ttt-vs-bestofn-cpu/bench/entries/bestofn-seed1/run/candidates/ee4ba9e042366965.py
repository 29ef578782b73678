def custom_kernel(data: (torch.Tensor, float32)) -> torch.Tensor:
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    for i in range(n):
        a = a[i * n:i+n]
        b = b[i * n:i+n]
        a = a + b
        b = b + 1
    return torch.add(a, b, dtype=torch.int32, n_cuda=n_cpu_cuda, block=block)
