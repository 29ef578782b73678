def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a = ref_avg(data)
    return a + b
def custom_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a = ref_avg(data)
    return a + b
def ref_avg(a, b):
    return (a + b).astype(torch.float16)
def custom_avg(a, b):
    return (a + b).astype(torch.float32)
def ref_avg
