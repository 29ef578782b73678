"""Leaves through os._exit(0): no cleanup, no result."""

import os


def custom_kernel(data):
    os._exit(0)
