"""Prints 25 MB to stdout and 25 MB to stderr at import, then adds correctly."""

import sys

_chunk = "x" * (1 << 20)
for _ in range(25):
    sys.stdout.write(_chunk)
    sys.stderr.write(_chunk)
sys.stdout.write("\nend of flood\n")
sys.stdout.flush()


def custom_kernel(data):
    a, b = data
    return a + b
