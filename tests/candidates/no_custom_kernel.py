"""Defines the kernel under the wrong name."""


def kernel(data):
    a, b = data
    return a + b
