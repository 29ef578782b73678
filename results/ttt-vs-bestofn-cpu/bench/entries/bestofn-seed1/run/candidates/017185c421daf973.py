import numpy as np

def ref_kernel(data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    a, b = data
    return a + b * np.tile(1, (len(data) / 2), dtype=data.dtype)[np.newaxis, 0:1, :]

def custom_kernel(data: torch.Tensor, n: int, n_block: int, n_out: int = 1, n_block_block: int = 2, n_block_block_block: int = 1) ->
