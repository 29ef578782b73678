"""Clocks: a CPU clock the candidate cannot patch, and CUDA events with an L2 flush per call.

This module is imported by the candidate's child before the candidate is, so the functions
captured here are the originals even if the candidate later replaces `time.perf_counter_ns`
or `torch.cuda.Event` (the guards report such patching; the timers never use the patched ones).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

_perf_counter_ns = time.perf_counter_ns
_cuda_synchronize = torch.cuda.synchronize
_CudaEvent = torch.cuda.Event
_event_record = torch.cuda.Event.record
_event_elapsed = torch.cuda.Event.elapsed_time
_event_synchronize = torch.cuda.Event.synchronize


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
        self.device = device
        props = torch.cuda.get_device_properties(torch.device(device))
        l2 = int(getattr(props, "L2_cache_size", 0) or 0)
        # Twice the L2 (at least 256 MiB) so every line a previous call touched is evicted.
        self._flush = torch.empty(max(2 * l2, 256 << 20), dtype=torch.int8, device=device)

    def time_call(self, fn: Callable[[Any], Any], data: Any) -> tuple[Any, float]:
        self._flush.zero_()
        _cuda_synchronize(self.device)
        start, stop = _CudaEvent(enable_timing=True), _CudaEvent(enable_timing=True)
        _event_record(start)
        out = fn(data)
        _cuda_synchronize(self.device)
        _event_record(stop)
        _event_synchronize(stop)
        return out, _event_elapsed(start, stop) * 1e3


def make_timer(device: str) -> CpuTimer | CudaTimer:
    return CudaTimer(device) if device.startswith("cuda") else CpuTimer()
