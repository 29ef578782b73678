"""Stops its own process (SIGSTOP) in the middle of a call."""

import os
import signal


def custom_kernel(data):
    os.kill(os.getpid(), signal.SIGSTOP)
    a, b = data
    return a + b
