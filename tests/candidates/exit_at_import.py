"""Exits with status 0 while being imported."""

import sys

sys.exit(0)


def custom_kernel(data):
    return data[0] + data[1]
