"""PUCT selection over the archive's states (TTT-Discover's search rule).

`score(s) = Q(s) + c · scale · P(s) · sqrt(1 + T) / (1 + n(s))` where Q(s) is the best reward
among s's direct children (s's own value before it has any), P a linear rank prior over all
states, n(s) the expansions at or below s, T all expansions, and `scale` the spread of the
non-root rewards so the exploration bonus is in the rewards' units. These functions are pure:
the archive supplies the numbers and keeps the tree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def puct_score(q: float, prior: float, n: int, total: int, scale: float, c: float) -> float:
    return q + c * scale * prior * math.sqrt(1 + total) / (1 + n)


def reward_scale(non_root_rewards: Sequence[float]) -> float:
    """max − min of the non-root rewards; 1 when there are none or they are all equal."""
    if not non_root_rewards:
        return 1.0
    spread = max(non_root_rewards) - min(non_root_rewards)
    return spread if spread > 0 else 1.0


def rank_prior(keys: Sequence[tuple]) -> list[float]:
    """Linear rank prior: the best of N states weighs N, the worst 1, normalised to sum 1.

    `keys` are sort keys, higher is better; states with equal keys share the mean weight of
    the ranks they span, so the prior does not depend on the order ties are listed in.
    """
    count = len(keys)
    if count == 0:
        return []
    order = sorted(range(count), key=lambda i: keys[i], reverse=True)
    weights = [0.0] * count
    start = 0
    while start < count:
        end = start
        while end + 1 < count and keys[order[end + 1]] == keys[order[start]]:
            end += 1
        shared = sum(count - rank for rank in range(start, end + 1)) / (end - start + 1)
        for rank in range(start, end + 1):
            weights[order[rank]] = shared
        start = end + 1
    total = count * (count + 1) / 2
    return [w / total for w in weights]


def select_diverse(scores: dict[K, float], k: int, lineage_of: Callable[[K], set[K]]) -> list[K]:
    """Up to k keys by descending score, skipping any in the lineage of one already picked.

    `scores` must iterate in a stable order (creation order): it breaks ties. `lineage_of(x)`
    returns x's ancestors; a candidate is blocked when it is an ancestor or a descendant of a
    pick. Fewer than k come back when the lineages run out.
    """
    ranked = sorted(enumerate(scores), key=lambda item: (-scores[item[1]], item[0]))
    picked: list[K] = []
    picked_ancestors: set[K] = set()
    for _, key in ranked:
        if len(picked) == k:
            break
        ancestors = lineage_of(key)
        if key in picked_ancestors or any(p in ancestors for p in picked):
            continue
        picked.append(key)
        picked_ancestors |= lineage_of(key)
    return picked
