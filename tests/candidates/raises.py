"""Raises at run time."""


def custom_kernel(data):
    raise RuntimeError("kernel launch failed: invalid configuration")
