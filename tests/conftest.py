"""Shared pytest set-up: the Triton interpreter on CPU machines, and the `gpu` mark."""

from __future__ import annotations

import os
import shutil

# Must be set before triton is imported anywhere in the test process.
if not shutil.which("nvidia-smi"):
    os.environ.setdefault("TRITON_INTERPRET", "1")
# One intra-op thread for the tests and every process they start: on a 2-core machine, OpenMP
# workers of the test process and of evaluator children waiting on each other make small
# matmuls an order of magnitude slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
