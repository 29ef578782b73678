"""The measurement protocol shared by candidate and reference: warm-up, timed repeats on fresh
inputs, stop once the standard error is under a fraction of the mean or the budget is spent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kerneldisc.evaluate.timing import CpuTimer, CudaTimer, now_s


@dataclass
class RepeatPolicy:
    warmup: int
    min_repeats: int
    max_repeats: int
    budget_s: float
    target_rel_stderr: float

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> RepeatPolicy:
        return cls(
            int(s["warmup"]),
            int(s["min_repeats"]),
            int(s["max_repeats"]),
            float(s["time_budget_s"]),
            float(s["target_rel_stderr"]),
        )


def measure(
    fn: Callable[[Any], Any],
    make_input: Callable[[int], Any],
    timer: CpuTimer | CudaTimer,
    policy: RepeatPolicy,
    after_call: Callable[[int, Any, Any], None] | None = None,
    before_call: Callable[[int, Any], None] | None = None,
) -> list[float]:
    """Per-call times in microseconds. `make_input(rep)` builds fresh inputs outside the timed
    region (negative reps are warm-up); the hooks run outside it too and may raise to stop."""
    for w in range(policy.warmup):
        fn(make_input(-1 - w))
    times: list[float] = []
    start = now_s()
    rep = 0
    while rep < policy.max_repeats:
        data = make_input(rep)
        if before_call is not None:
            before_call(rep, data)
        out, us = timer.time_call(fn, data)
        times.append(us)
        if after_call is not None:
            after_call(rep, data, out)
        del out, data
        rep += 1
        if rep >= policy.min_repeats and (
            _rel_stderr(times) < policy.target_rel_stderr or now_s() - start >= policy.budget_s
        ):
            break
    return times


def _rel_stderr(times: list[float]) -> float:
    n = len(times)
    mean = sum(times) / n
    if n < 2 or mean <= 0:
        return float("inf")
    var = sum((t - mean) ** 2 for t in times) / (n - 1)
    return (var / n) ** 0.5 / mean
