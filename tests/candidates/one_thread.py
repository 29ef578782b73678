"""Correct, and only lowers torch's intra-op threads to one: no faster than the reference, which
the evaluator runs with one thread too."""

import torch

torch.set_num_threads(1)


def custom_kernel(data):
    a, b = data
    return torch.add(a, b)
