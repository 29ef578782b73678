"""Compile error: imports a module that does not exist."""

import kerneldisc_no_such_module  # noqa: F401


def custom_kernel(data):
    return data[0] + data[1]
