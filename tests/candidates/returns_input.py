"""Aliasing: writes the answer into its input and returns the input itself."""


def custom_kernel(data):
    a, b = data
    a.add_(b)
    return a
