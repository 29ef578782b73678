"""Correct: splits the sum over four Python threads, each adding a quarter into the output. Its
CPU time is the four threads' together, so the split buys nothing."""

import threading

import torch


def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    n = a.numel()
    bounds = [(i * n // 4, (i + 1) * n // 4) for i in range(4)]
    workers = [threading.Thread(target=torch.add, args=(a[lo:hi], b[lo:hi]), kwargs={"out": out[lo:hi]})
               for lo, hi in bounds]  # fmt: skip
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return out
