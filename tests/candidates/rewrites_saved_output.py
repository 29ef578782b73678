"""Correct values, but every call also rewrites the outputs the harness has already saved for
the judge in this benchmark (here with the same values in torch's legacy file format; a real
exploit would put right answers behind wrong, fast timed calls)."""

import glob
import os

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))


def custom_kernel(data):
    for path in glob.glob(os.path.join(_HERE, "**", "bench*_rep*.pt"), recursive=True):
        try:
            saved = torch.load(path, weights_only=True)
            torch.save(saved, path, _use_new_zipfile_serialization=False)
        except Exception:
            pass
    a, b = data
    return a + b
