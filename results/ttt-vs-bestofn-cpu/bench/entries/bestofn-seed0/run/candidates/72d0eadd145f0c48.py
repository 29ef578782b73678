import torch
import numpy as np
import torch.nn.functional as nn_functional
import torch.nn.functional as nn_functional_1

def max_pool(x):
    return max(x, 0.0)
def max_pool_batchx(x, out_batch):
    return max(x, out_batch, out_batch, 1)
def max_pool_block(block):
    return max(x, block, out_block)
def max_pool_pool(x, pool_size):
    return max_pool(x, pool
