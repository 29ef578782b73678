"""The repeat rule shared by candidate and reference: warm-up calls, then timed calls on fresh
inputs until the standard error is under a fraction of the mean (after a minimum number of
repeats) or the time budget is spent. The judge runs it (judge.Judge._bench)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


def rel_stderr(times: list[float]) -> float:
    """The standard error of the mean as a fraction of the mean (inf for fewer than 2 times)."""
    n = len(times)
    mean = sum(times) / n if n else 0.0
    if n < 2 or mean <= 0:
        return float("inf")
    var = sum((t - mean) ** 2 for t in times) / (n - 1)
    return (var / n) ** 0.5 / mean


REFERENCE_BUDGET_S = 600.0  # the trusted reference's time budget per timing (its time is the task's)
