"""Correct: keeps its own pool of worker threads, which wait for work on a queue inside this file
(a frame of the candidate's own file on their stacks) whenever no call is running."""

import queue
import threading

import torch

_jobs: queue.Queue = queue.Queue()


def _worker():
    while True:
        job, done = _jobs.get()
        job()
        done.set()


for _ in range(2):
    threading.Thread(target=_worker, daemon=True).start()


def custom_kernel(data):
    a, b = data
    out = torch.empty_like(a)
    done = threading.Event()
    _jobs.put((lambda: torch.add(a, b, out=out), done))
    done.wait()
    return out
