"""Tries to grow the judge's input region to a terabyte (so that the judge's own later resizing
would fail), then computes honestly."""

import os

try:
    os.ftruncate(5, 1 << 40)
    print("grew the arena")
except OSError as exc:
    print("could not grow the arena:", exc)


def custom_kernel(data):
    a, b = data
    return a + b
