"""Clocks: a CPU clock the candidate cannot patch, and CUDA events with an L2 flush per call.

This module is imported by the candidate's child before the candidate is, so the functions
captured here are the originals even if the candidate later replaces `time.perf_counter_ns`
or `torch.cuda.Event` (the guards report such patching; the timers never use the patched ones).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_perf_counter_ns = time.perf_counter_ns


def now_s() -> float:
    return _perf_counter_ns() * 1e-9


class CpuTimer:
    """Wall time of one call on the CPU, in microseconds."""

    device = "cpu"

    def time_call(self, fn: Callable[[Any], Any], data: Any) -> tuple[Any, float]:
        start = _perf_counter_ns()
        out = fn(data)
        stop = _perf_counter_ns()
        return out, (stop - start) / 1e3


class CudaTimer:
    """CUDA events around one call, L2 flushed before it and the whole device synchronised
    (every stream) before the stop event, so work left on side streams is inside the time."""

    def __init__(self, device: str) -> None:
        import torch

        self.device = device
        self._torch = torch
        self._sync = torch.cuda.synchronize
        self._event = torch.cuda.Event
        self._record = torch.cuda.Event.record
        self._elapsed = torch.cuda.Event.elapsed_time
        self._event_sync = torch.cuda.Event.synchronize
        props = torch.cuda.get_device_properties(torch.device(device))
        l2 = int(getattr(props, "L2_cache_size", 0) or 0)
        # Twice the L2 (at least 256 MiB) so every line a previous call touched is evicted.
        self._flush = torch.empty(max(2 * l2, 256 << 20), dtype=torch.int8, device=device)

    def time_call(self, fn: Callable[[Any], Any], data: Any) -> tuple[Any, float]:
        self._flush.zero_()
        self._sync(self.device)
        start, stop = self._event(enable_timing=True), self._event(enable_timing=True)
        self._record(start)
        out = fn(data)
        self._sync(self.device)
        self._record(stop)
        self._event_sync(stop)
        return out, self._elapsed(start, stop) * 1e3


def make_timer(device: str) -> CpuTimer | CudaTimer:
    return CudaTimer(device) if device.startswith("cuda") else CpuTimer()
