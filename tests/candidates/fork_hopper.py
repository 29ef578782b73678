"""Starts a helper that, once the candidate's process is gone, forks into two lineages that keep
re-forking (each parent exits, each child tries setsid) for up to 60 s, so that a kill aimed at a
pid found a moment earlier misses. Its command line carries $KERNELDISC_TEST_TOKEN so a test can
look for survivors."""

import os
import subprocess
import sys

_HOP = r"""
import os, sys, time
stop = time.monotonic() + 60
parent = os.getppid()
while os.getppid() == parent and time.monotonic() < stop:
    time.sleep(0.001)
os.fork()
while time.monotonic() < stop:
    if os.fork():
        os._exit(0)
    try:
        os.setsid()
    except OSError:
        pass
"""
subprocess.Popen(
    [sys.executable, "-S", "-c", _HOP, os.environ["KERNELDISC_TEST_TOKEN"]],
    stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)


def custom_kernel(data):
    a, b = data
    return a + b
