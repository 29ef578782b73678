"""Rollouts with a verdict already attached, for tests of the parts downstream of the evaluator."""

from __future__ import annotations

from kerneldisc.evaluate import Verdict
from kerneldisc.rollout import Rollout


def judged(
    code: str,
    reward: float,
    runtime_us: float | None,
    status: str,
    message: str = "",
    speedup: float | None = -1.0,
) -> Rollout:
    """`speedup` defaults to the reward for correct kernels; None leaves it unmeasured."""
    if speedup == -1.0:
        speedup = reward if status == "ok" else None
    rollout = Rollout(step=1, parent=None, code=code, code_hash=f"h{abs(hash(code)) % 10**6}")
    rollout.verdict = Verdict(task="t", candidate="c.py", device="cpu", status=status, message=message,
                              runtime_us=runtime_us, speedup=speedup)  # fmt: skip
    rollout.reward = reward
    return rollout


def ok(code: str, reward: float, runtime_us: float = 10.0) -> Rollout:
    return judged(code, reward, runtime_us, "ok", "passed")


def failed(code: str = "def custom_kernel(data):\n    raise RuntimeError\n") -> Rollout:
    return judged(code, 0.0, None, "crash", "RuntimeError")
