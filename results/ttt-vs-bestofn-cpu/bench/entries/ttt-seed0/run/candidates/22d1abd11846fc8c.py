import numpy as np

def custom_kernel(data):
    a, b = data
    return a + b

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b

# A simple test to verify function's behavior:
def test_custom_kernel():
    x = (np.random.randn(100))
    a, b = np.random.randint(0, 100, size=(20))
    out = custom_kernel(x)
    assert np
