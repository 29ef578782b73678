"""Asks the kernel for 4 GiB of the (sparse, all-of-RAM) input region's pages through its file
descriptor: memory no limit of the candidate's would count."""

import os

os.posix_fallocate(5, 0, 4 << 30)


def custom_kernel(data):
    a, b = data
    return a + b
