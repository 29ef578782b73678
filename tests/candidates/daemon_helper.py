"""At import, double-forks a helper that leaves the candidate's process group (setsid) and spins
forever, loading the CPU while anything else is timed; its pid goes to $KERNELDISC_TEST_PIDFILE."""

import os

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(os.environ["KERNELDISC_TEST_PIDFILE"], "w") as f:
            f.write(str(os.getpid()))
        while True:
            pass
    os._exit(0)


def custom_kernel(data):
    a, b = data
    return a + b
