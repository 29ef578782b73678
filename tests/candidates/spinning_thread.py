"""Correct output, but each call leaves a thread busy on the CPU after returning. The loop runs
in library code only (C iterators calling torch.add), so no frame of this file is on the
thread's stack: only its CPU use gives it away."""

import collections
import itertools
import threading

import torch


def custom_kernel(data):
    a, b = data
    spin = itertools.starmap(torch.add, itertools.repeat((a, b)))
    threading.Thread(target=collections.deque, args=(spin, 0), daemon=True).start()
    return torch.add(a, b)
