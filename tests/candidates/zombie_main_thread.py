"""For the mm task. At import, hands the harness's command loop to a thread of its own, which
answers honestly on the test calls and, on timed calls, says the call is done at once while a
worker thread computes the product; then ends its main thread alone (SYS_exit), so the process
reads as a zombie whose threads run on, as if the judge had nothing left to stop."""

import ctypes
import sys
import threading
import types

import torch

H = sys.modules["kerneldisc.evaluate.harness"]
_spec = types.SimpleNamespace(
    role="reference", device="cpu", uses_triton=False, entry=lambda data: data[0] @ data[1]
)


def _serve():
    H._serve(_spec, H._Link())


threading.Thread(target=_serve).start()
ctypes.CDLL(None).syscall(60, 0)  # SYS_exit on x86-64: this thread only


def custom_kernel(data):
    a, b = data
    return torch.mm(a, b)
