"""Modifies its input while returning a right (fresh) answer."""


def custom_kernel(data):
    a, b = data
    a.add_(b)
    return a.clone()
