def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return ref_kernel_backprop(data, a, b)

def ref_kernel_backprop(data: any(x for x in data if isinstance(x, torch.Tensor))) -> any(x if isinstance(x, (x, torch.Tensor), (x, torch.Tensor)) else None):
    return ref_kernel_backprop_backprop(data, data, torch.Tensor())
def ref_kernel_backprop_backprop(x: any(x
