"""A speedup comes with its 95 % interval, and a verdict says when the candidate and the
reference cannot be told apart."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kerneldisc.evaluate import EvalConfig, evaluate
from kerneldisc.evaluate.verdict import RuntimeStats, speedup_interval
from kerneldisc.task import load_task

CANDIDATES = Path(__file__).parent / "candidates"


def _stats(mean: float, stderr: float) -> RuntimeStats:
    return RuntimeStats(mean, stderr * 3, stderr, mean, mean, mean, 9)


def test_exact_timings_give_a_point_and_noise_widens_it_on_the_log_scale():
    assert speedup_interval([_stats(50, 0)], [_stats(100, 0)], "geom") == pytest.approx((2.0, 2.0))
    low, high = speedup_interval([_stats(50, 5)], [_stats(100, 0)], "geom")  # 10 % standard error
    assert low == pytest.approx(2.0 / math.exp(1.96 * 0.1)) and high == pytest.approx(
        2.0 * math.exp(1.96 * 0.1)
    )
    # geometric ranking: each benchmark's relative errors, averaged over n benchmarks
    two = speedup_interval([_stats(50, 5), _stats(10, 1)], [_stats(100, 0), _stats(20, 0)], "geom")
    assert two[1] / 2.0 == pytest.approx(math.exp(1.96 * math.sqrt(2 * 0.01) / 2))
    # arithmetic ranking: errors of the summed means
    mean = speedup_interval([_stats(50, 3), _stats(50, 4)], [_stats(100, 0), _stats(100, 0)], "mean")
    assert mean[1] / 2.0 == pytest.approx(math.exp(1.96 * 5 / 100))


@pytest.mark.slow
def test_a_verdict_carries_its_interval_and_says_when_it_holds_one():
    v = evaluate(load_task(CANDIDATES / "add_task"), CANDIDATES / "add_torch.py", EvalConfig(device="cpu"))
    assert v.status == "ok" and v.speedup_ci is not None
    low, high = v.speedup_ci
    assert low <= v.speedup <= high and "95% interval" in v.message and "95% interval" in v.summary()
    assert ("not distinguishable from the reference" in v.message) == (low <= 1.0 <= high)
