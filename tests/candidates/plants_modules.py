"""At import, plants modules where a trusted process might import them: torch.py, numpy.py,
sitecustomize.py, utils.py and task.py in its working folder, the folder above it (the
evaluation's) and the task's folder (found through the reference module the judge loaded before
forking). A planted module, if ever run, writes a marker file. The kernel is honest."""

import os
import sys
import tempfile

import torch

_MARKER = os.environ.get(
    "KERNELDISC_TEST_MARKER", os.path.join(tempfile.gettempdir(), "kerneldisc-planted-ran")
)
_BODY = f"open({_MARKER!r}, 'w').write(__name__)\nraise ImportError('planted')\n"
_folders = {os.getcwd(), os.path.dirname(os.getcwd())}
for module in list(sys.modules.values()):
    if getattr(module, "__name__", "").startswith("_kerneldisc_ref_") and getattr(module, "__file__", None):
        _folders.add(os.path.dirname(module.__file__))
planted, refused = [], []
for folder in _folders:
    for name in ("torch.py", "numpy.py", "sitecustomize.py", "utils.py", "task.py"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            continue
        try:
            with open(path, "x") as f:
                f.write(_BODY)
            planted.append(path)
        except OSError:
            refused.append(path)
print("planted:", planted)
print("refused:", refused)


def custom_kernel(data):
    a, b = data
    return torch.add(a, b)
