def ref_kernel(*args, **kwargs):
    tensor = None
    for arg, **kwargs_list in zip(args, kwargs):
        if isinstance(tensor, torch.Tensor):
            tensor = tensor + torch.add(*args, **kwargs)
        elif isinstance(tensor, torch.Tensor):
            tensor = tensor + torch.add(*tensor, *args, **kwargs_list)
    return tensor

def add_kernel(*args, **kwargs):
    tensor = None
    for arg, **kwargs_list in zip(args, kwargs):
        tensor = ref_kernel(tensor, *kwargs_
