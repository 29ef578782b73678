"""At import, double-forks a helper that tries to leave the candidate's process group (setsid,
which the sandbox pretends) and spins forever; its pid goes to $KERNELDISC_TEST_PIDFILE. Orphaned, it
is reparented to the judge: it stays in the candidate's group, is stopped with it between calls,
its CPU time is charged to the candidate's calls, and it dies with the evaluation."""

import os

if os.fork() == 0:
    try:
        os.setsid()
    except PermissionError:
        pass
    if os.fork() == 0:
        with open(os.environ["KERNELDISC_TEST_PIDFILE"], "w") as f:
            f.write(str(os.getpid()))
        while True:
            pass
    os._exit(0)


def custom_kernel(data):
    a, b = data
    return a + b
