"""Correct values, but every call also rewrites the outputs the harness has already saved for
the judge in this benchmark (here it only appends a byte; a real exploit would put right answers
behind wrong, fast timed calls)."""

import glob
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def custom_kernel(data):
    for path in glob.glob(os.path.join(_HERE, "**", "bench*_rep*.pt"), recursive=True):
        try:
            with open(path, "ab") as f:
                f.write(b"\0")
        except OSError:
            pass
    a, b = data
    return a + b
