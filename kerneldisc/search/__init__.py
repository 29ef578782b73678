"""The search over kept kernels: the archive (states, lineage, persistence) and PUCT selection."""

from kerneldisc.search.archive import Archive, State, normalise_code
from kerneldisc.search.puct import puct_score, rank_prior, reward_scale, select_diverse

__all__ = [
    "Archive",
    "State",
    "normalise_code",
    "puct_score",
    "rank_prior",
    "reward_scale",
    "select_diverse",
]
