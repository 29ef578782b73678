"""Dereferences address 0: the process dies of SIGSEGV."""

import ctypes


def custom_kernel(data):
    ctypes.string_at(0)
    return data[0] + data[1]
