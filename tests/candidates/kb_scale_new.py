"""KernelBench candidate: the same layers, forward written out by hand."""

import torch
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.linear = nn.Linear(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp_min(x @ self.linear.weight.t() + self.linear.bias, 0.0)
