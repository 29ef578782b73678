def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

def custom_kernel(data):
    a, b = data
    return a + b
def add_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr = 0):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets > n
    a = tl.load(a_ptr
