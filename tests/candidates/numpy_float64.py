"""Correct: adds in numpy, in float64, and returns float32."""

import numpy as np
import torch


def custom_kernel(data):
    a, b = data
    return torch.from_numpy((a.numpy().astype(np.float64) + b.numpy()).astype(np.float32))
