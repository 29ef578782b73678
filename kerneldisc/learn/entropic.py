"""Entropic advantages of one group of rollouts (TTT-Discover, arXiv 2601.16175).

For the K rewards of one group, `e_i = exp(β (r_i − max r))` and the advantage is
`A_i = e_i / mean_{j≠i}(e_j) − 1` — each rollout compared with the others (leave-one-out), so a
rollout never pulls its own baseline up. With `beta=None`, β is chosen per group so that
`q_β = softmax(β r)` sits at KL(q_β ‖ uniform) = ln 2: the weight concentrates on roughly the
better half of the group, whatever the rewards' units.

Scale and offset. β is searched on rewards normalised to `z = (r − max r) / (max r − min r)`,
which lie in [−1, 0]; the β returned is in the units of the input (`β_z / (max r − min r)`),
so `beta=returned` reproduces the same advantages and doubling every reward halves β.

When ln 2 is out of reach. KL(q_β ‖ uniform) grows with β towards ln K − ln m, where m rewards
tie at the maximum. When that limit is ≤ ln 2 (half or more of the group tied at the top, or a
lone winner of a pair) no finite β reaches ln 2; the published code then lets β run to about
1e6 and a lone winner's advantage to about 1e12. Here β_z is capped at `BETA_CAP_NORMALISED`:
a reward at the group's minimum keeps e^−8 ≈ 3e-4 of a winner's weight, the KL is within 0.5 %
of its limit, and no advantage in such a group exceeds e^8 − 1 ≈ 3e3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TARGET_KL = math.log(2.0)
BETA_CAP_NORMALISED = 8.0  # cap on β·(max r − min r); see the module docstring
BETA_RELATIVE_PRECISION = 1e-6
_LIMIT_TOLERANCE = 1e-9  # a KL limit this close to ln 2 counts as reachable only in the limit
_MAX_BRACKET_DOUBLINGS = 2000


def entropic_advantages(
    rewards: Sequence[float] | np.ndarray, beta: float | None = None
) -> tuple[np.ndarray, float]:
    """Leave-one-out entropic advantages of one group and the β used (in reward units).

    `beta=None` picks β adaptively (KL(softmax(βr) ‖ uniform) = ln 2); a number uses that β.
    One reward, or all rewards equal, gives all-zero advantages.
    """
    r = _as_rewards(rewards)
    if beta is not None and (not math.isfinite(beta) or beta < 0):
        raise ValueError(f"beta must be a finite number ≥ 0 or None, got {beta!r}")
    spread = float(r.max() - r.min()) if r.size else 0.0
    if r.size <= 1 or spread == 0.0:
        return np.zeros(r.size), (0.0 if beta is None else float(beta))
    z = (r - r.max()) / spread
    beta_z = _adaptive_beta_normalised(z) if beta is None else float(beta) * spread
    advantages = _leave_one_out(z, beta_z)
    if not np.all(np.isfinite(advantages)):
        raise ValueError(
            f"beta={beta} with a reward spread of {spread:g} overflows the advantages "
            "(e^(β·spread) exceeds the float range); use a smaller beta or beta=None"
        )
    return advantages, beta_z / spread


def mean_baseline_advantages(rewards: Sequence[float] | np.ndarray) -> np.ndarray:
    """`r − mean r`: the plain baseline, for ablations against the entropic advantages."""
    r = _as_rewards(rewards)
    return r - r.mean() if r.size else r


def kl_from_uniform(rewards: Sequence[float] | np.ndarray, beta: float) -> float:
    """KL(softmax(β r) ‖ uniform) in nats; non-decreasing in β ≥ 0, limit ln K − ln m."""
    r = _as_rewards(rewards)
    if r.size == 0:
        return 0.0
    logits = beta * (r - r.max())
    log_q = logits - _logsumexp(logits)
    q = np.exp(log_q)
    return float(max(0.0, np.sum(q * (log_q + math.log(r.size)))))


def _adaptive_beta_normalised(z: np.ndarray) -> float:
    """β on range-normalised rewards (max 0, min −1) with KL = ln 2, or the cap when unreachable.

    Brackets by doubling, then bisects until the bracket is within a relative 1e-6 of β.
    """
    k = z.size
    tied_at_max = int(np.count_nonzero(z == z.max()))
    if math.log(k) - math.log(tied_at_max) <= TARGET_KL + _LIMIT_TOLERANCE:
        return BETA_CAP_NORMALISED
    lo, hi = 0.0, 1.0
    for _ in range(_MAX_BRACKET_DOUBLINGS):
        if kl_from_uniform(z, hi) >= TARGET_KL:
            break
        lo, hi = hi, hi * 2.0
    else:  # the limit exceeds ln 2, so this needs float rewards closer than any IEEE double
        raise ArithmeticError(f"no β reaches KL = ln 2 for normalised rewards {z.tolist()}")
    while hi - lo > BETA_RELATIVE_PRECISION * hi:
        mid = 0.5 * (lo + hi)
        if kl_from_uniform(z, mid) >= TARGET_KL:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def _leave_one_out(z: np.ndarray, beta_z: float) -> np.ndarray:
    """`e_i / mean_{j≠i} e_j − 1` in log space, exact even when the others underflow.

    Every e_j ≤ 1 with a 1 at the maximum, so for all but a unique maximiser the other
    rewards' sum contains that 1 and `total − e_i` loses nothing. A unique maximiser's
    denominator is rebuilt around the runner-up so a tiny sum is not rounded to zero.
    """
    k = z.size
    logits = beta_z * z
    e = np.exp(logits)
    others = e.sum() - e
    log_ratio = logits - np.log(np.maximum(others, np.finfo(float).tiny) / (k - 1))
    top = int(np.argmax(z))
    if np.count_nonzero(z == z[top]) == 1:
        rest = np.delete(logits, top)
        log_ratio[top] = -(_logsumexp(rest) - math.log(k - 1))
    with np.errstate(over="ignore"):
        return np.expm1(log_ratio)


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


def _as_rewards(rewards: Sequence[float] | np.ndarray) -> np.ndarray:
    r = np.asarray(rewards, dtype=float).reshape(-1)
    if not np.all(np.isfinite(r)):
        raise ValueError(f"rewards must be finite numbers (failures score 0), got {r.tolist()}")
    return r
