import numpy as np

def ref_kernel(data: np.ndarray) -> np.ndarray:
    print(f"add_kernel: using {type(data).__name__} to add two numpy tensors.")
    add_kernel((np.ndarray(data), np.ndarray(data)))


def custom_kernel(data):
    a, b = data
    out = np.empty_like(a)
    return np.repeat(add_kernel, num_elements_per_loop(num_layers_per_loop, batch_size_per_round), num_layers_per
