import numpy as np

def custom_kernel(data):
    a, b = data
    return a + b

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

# A simple test to verify function's behavior:
def test_custom_kernel():
    x = (1, 1)  # (x, x)
    print("custom_kernel", custom_kernel)
    return custom_kernel(x)

test_kernel()
test_kernel()
test_
