"""Aliasing: writes the answer into an input and returns a view of it."""


def custom_kernel(data):
    a, b = data
    b.add_(a)
    return b.view(-1)[:]
