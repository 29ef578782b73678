"""Writes, on the harness's own reply pipe, a line nested a hundred thousand levels deep (enough
to break a JSON parser that recurses), then computes honestly."""

import os


def custom_kernel(data):
    os.write(4, b'{"ok": true, "outputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    a, b = data
    return a + b
