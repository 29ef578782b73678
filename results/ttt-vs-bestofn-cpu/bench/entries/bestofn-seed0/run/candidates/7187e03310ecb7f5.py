def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

def custom_kernel(data: tl.Tensor) -> torch.Tensor:
    a, b = data
    return a + b

def test_kernel_custom_zero_tuple()
    data = (0, 1)
    def ref_kernel(a, b, out):
        a_ptr = ref_kernel_zero_tuple(a_ptr, b_ptr, out, 1024)
        b
