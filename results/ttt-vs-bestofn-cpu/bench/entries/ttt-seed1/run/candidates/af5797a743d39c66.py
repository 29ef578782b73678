def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.einsum("BiBiBiV", a + b, a + b)
def custom_kernel(tensor: torch.Tensor, dtype: dtype) -> torch.Tensor:
    return tensor + dtype
def test_ref_kernel():
    data = (1, 2) + (3, 4)
    assert ref_kernel(data) == 7, "input a + b= (a + b)"
test_ref_kernel()
