"""The archive: every kept kernel as a state in a tree, with PUCT statistics and a file on disk.

Roots are the task's starting submission (evaluated, so its real runtime is known) and,
optionally, an empty root (no code yet: its prompt starts from the task's skeleton). Each step
the loop `select`s start states, samples and evaluates rollouts from them, and hands the
results to `record_rollouts`. Every rollout, failed or not, is one expansion: n += 1 for the
parent and each ancestor, T += 1. Only correct rollouts (status "ok") become child states;
evaluating the roots is not an expansion.

The empty root has no reward. For Q and the rank prior it is valued at the lowest reward of
any real state (roots included; 0 while there is none) and ranked below every real state of
equal value, so it never outranks a real kernel — the published search valued it at 0, above every
negative real value, and kept choosing it.

There is one root per group (`ensure_roots`: the roots repeated in turn), so every group of
every step has a start state of its own lineage. Children are deduplicated archive-wide by
normalised code (comments, trailing whitespace and blank lines removed); a resubmission of kept
code adds no state but its reward still counts towards its parent's Q (as published); a parent
keeps its best `top_children` children, and the archive at most
`max_size` states, evicting the lowest-reward leaves first. Roots, states with children (so
lineages stay whole) and the best kernel are never evicted, nor the start states of the step in
progress (their rollouts are still to be recorded). The archive lives in memory; the run folder
writes `to_dict()` into each step's checkpoint (it is the only writer of run files), and
`Archive.load` / `from_dict` restore n, T, Q and every state exactly.
"""

from __future__ import annotations

import io
import json
import math
import numbers
import tokenize
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kerneldisc.errors import ConfigError
from kerneldisc.rollout import Rollout, compact_gpu_compile
from kerneldisc.search.puct import puct_score, rank_prior, reward_scale, select_diverse

FORMAT_VERSION = 1
OK = "ok"


@dataclass
class State:
    """One kernel in the archive (or the empty root) with its search statistics."""

    id: str
    code: str
    reward: float | None  # None only for the empty root
    runtime_us: float | None
    status: str  # the evaluator's verdict status: ok | compile_error | incorrect | ...
    message: str  # the verdict's one-line summary
    parent: str | None
    step: int  # the step whose rollout produced it; -1 for roots
    is_root: bool = False
    n: int = 0  # expansions of this state and of every state below it
    children: list[str] = field(default_factory=list)
    best_child_reward: float | None = None  # Q once a child exists; kept when children are evicted
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_empty_root(self) -> bool:
        return self.is_root and self.reward is None

    @property
    def correct(self) -> bool:
        return self.status == OK and self.reward is not None


class Archive:
    """States, their tree and PUCT statistics; `to_dict` is what the run folder writes."""

    def __init__(self, c: float = 1.0, top_children: int = 2, max_size: int = 1000) -> None:
        if top_children < 1:
            raise ValueError(f"archive top_children must be ≥ 1, got {top_children}")
        if max_size < 2:
            raise ValueError(f"archive max_size must be ≥ 2 (a root and a kernel), got {max_size}")
        self.c = float(c)
        self.top_children = int(top_children)
        self.max_size = int(max_size)
        self.total_expansions = 0  # T
        self.states: dict[str, State] = {}  # creation order: breaks score ties
        self.pending: list[str] = []  # start states selected and not yet recorded
        self._next_seq = 0
        self._normalised: dict[str, str] = {}  # normalised code -> state id

    # -- construction and persistence ------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Archive:
        target = Path(path)
        try:
            data = json.loads(target.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{target}: no archive file (expected archive.json of a run)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{target}: not a readable archive file ({exc})") from None
        return cls.from_dict(data, str(target))

    @classmethod
    def from_dict(cls, data: Any, where: str = "archive") -> Archive:
        target = where
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            found = data.get("version") if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"{target}: archive format version {found!r}, expected {FORMAT_VERSION}")
        try:
            archive = cls(c=data["c"], top_children=data["top_children"], max_size=data["max_size"])
            archive.total_expansions = int(data["total_expansions"])
            archive._next_seq = int(data["next_seq"])
            archive.pending = [str(s) for s in data["pending"]]
            names = {f.name for f in fields(State)}
            for raw in data["states"]:
                state = State(**{k: v for k, v in raw.items() if k in names})
                archive.states[state.id] = state
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{target}: archive file is missing or has a malformed field ({exc})") from None
        for state in archive.states.values():
            if state.parent is not None and state.parent not in archive.states:
                raise ConfigError(f"{target}: state {state.id} names parent {state.parent}, which is absent")
            if not state.is_empty_root:
                archive._normalised.setdefault(normalise_code(state.code), state.id)
        return archive

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "c": self.c,
            "top_children": self.top_children,
            "max_size": self.max_size,
            "total_expansions": self.total_expansions,
            "next_seq": self._next_seq,
            "pending": list(self.pending),
            "states": [asdict(s) for s in self.states.values()],
        }

    # -- roots -----------------------------------------------------------------------------

    def add_root(self, rollout: Rollout) -> State:
        """The evaluated starting submission (its evaluation is not an expansion)."""
        state = self._new_state(
            rollout.code or "", float(rollout.reward), rollout.runtime_us, rollout.status, rollout.message,
            parent=None, step=-1,
        )  # fmt: skip
        state.extra = _extra(rollout)
        state.is_root = True
        self._register(state)
        return state

    def add_empty_root(self) -> State:
        """A root without code: prompts start it from the task's skeleton."""
        state = self._new_state("", None, None, "empty", "no code yet", parent=None, step=-1)
        state.is_root = True
        self._register(state)
        return state

    def ensure_roots(self, count: int) -> None:
        """At least `count` roots, the existing ones repeated in turn (the starting submission, the
        empty root, the submission again, ...). Picks in one step never share a lineage, so with
        one root per group every group of every step has a start state, as in the published
        sampler: never the half-filled first steps two roots would give."""
        roots = [s for s in self.states.values() if s.is_root]
        if not roots:
            return
        for i in range(len(roots), count):
            source = roots[i % len(roots)]
            copy = self._new_state(source.code, source.reward, source.runtime_us, source.status, source.message,
                                   parent=None, step=-1)  # fmt: skip
            copy.is_root = True
            copy.extra = dict(source.extra)
            self._register(copy)

    # -- search ----------------------------------------------------------------------------

    def value(self, state_id: str) -> float:
        """A state's own reward; the empty root's stand-in is the lowest real reward."""
        state = self.states[state_id]
        return state.reward if state.reward is not None else self._empty_root_value()

    def q(self, state_id: str) -> float:
        state = self.states[state_id]
        return state.best_child_reward if state.best_child_reward is not None else self.value(state_id)

    def scores(self) -> dict[str, float]:
        """PUCT score of every state, in creation order."""
        ids = list(self.states)
        priors = rank_prior([(self.value(i), not self.states[i].is_empty_root) for i in ids])
        scale = reward_scale([s.reward for s in self.states.values() if not s.is_root])
        return {
            i: puct_score(self.q(i), p, self.states[i].n, self.total_expansions, scale, self.c)
            for i, p in zip(ids, priors, strict=True)
        }

    def score(self, state_id: str) -> float:
        if state_id not in self.states:
            raise KeyError(f"no state {state_id!r} in the archive")
        return self.scores()[state_id]

    def select(self, k: int) -> list[State]:
        """Up to k start states: best PUCT score first, no two in one lineage."""
        picked = select_diverse(self.scores(), k, lambda i: {s.id for s in self.lineage(i)[:-1]})
        self.pending = list(picked)
        return [self.states[i] for i in picked]

    def record_rollouts(self, parent_id: str, rollouts: Iterable[Rollout], step: int) -> list[str | None]:
        """Count every rollout as an expansion of `parent_id`; keep correct new kernels as children.

        Returns, aligned with `rollouts`, the id of the child state each one became, or None
        (failed, a duplicate of a kept kernel, or dropped by the top-k or size cap).
        """
        if parent_id not in self.states:
            raise KeyError(f"no state {parent_id!r} in the archive (was it selected from this archive?)")
        parent = self.states[parent_id]
        ancestors = self.lineage(parent_id)
        added: list[str | None] = []
        for rollout in rollouts:
            for state in ancestors:
                state.n += 1
            self.total_expansions += 1
            added.append(None)
            if rollout.status != OK or not _is_number(rollout.reward):
                continue
            key = normalise_code(rollout.code or "")
            if key in self._normalised:
                # Code already kept: no new state, but its measurement counts towards the parent's
                # Q, as in the published search.
                if parent.best_child_reward is None or rollout.reward > parent.best_child_reward:
                    parent.best_child_reward = float(rollout.reward)
                continue
            child = self._new_state(
                rollout.code or "", float(rollout.reward), rollout.runtime_us, rollout.status, rollout.message,
                parent=parent_id, step=step,
            )  # fmt: skip
            child.extra = _extra(rollout)
            self._register(child)
            parent.children.append(child.id)
            if parent.best_child_reward is None or child.reward > parent.best_child_reward:
                parent.best_child_reward = child.reward
            added[-1] = child.id
        if parent_id in self.pending:
            self.pending.remove(parent_id)
        self._keep_top_children(parent)
        self._cap_size()
        return [i if i in self.states else None for i in added]

    # -- queries ---------------------------------------------------------------------------

    def best(self) -> State | None:
        """The correct state with the highest reward (earliest on ties); None before any."""
        correct = [s for s in self.states.values() if s.correct]
        return max(correct, key=lambda s: s.reward, default=None)

    def lineage(self, state_id: str) -> list[State]:
        """The state's ancestors from its root down, ending with the state itself."""
        chain = []
        current: str | None = state_id
        while current is not None:
            state = self.states[current]
            chain.append(state)
            current = state.parent
        return chain[::-1]

    def __len__(self) -> int:
        return len(self.states)

    # -- internals -------------------------------------------------------------------------

    def _new_state(
        self,
        code: str,
        reward: float | None,
        runtime_us: float | None,
        status: str,
        message: str,
        parent: str | None,
        step: int,
    ) -> State:
        state_id = f"s{self._next_seq:06d}"
        self._next_seq += 1
        runtime = float(runtime_us) if runtime_us is not None else None
        return State(
            id=state_id, code=code, reward=reward, runtime_us=runtime, status=status,
            message=message, parent=parent, step=step,
        )  # fmt: skip

    def _register(self, state: State) -> None:
        self.states[state.id] = state
        if not state.is_empty_root:
            self._normalised.setdefault(normalise_code(state.code), state.id)

    def _empty_root_value(self) -> float:
        real = [s.reward for s in self.states.values() if s.reward is not None]
        return min(real) if real else 0.0

    def _keep_top_children(self, parent: State) -> None:
        """Keep the parent's best `top_children` children, plus any that have children of their own."""
        ranked = sorted(parent.children, key=lambda i: -self.states[i].reward)
        for child_id in ranked[self.top_children :]:
            if not self.states[child_id].children:
                self._evict(child_id)

    def _cap_size(self) -> None:
        """Evict the lowest-reward leaves (newest first on ties) until the archive fits.

        Roots, states with children and the best kernel are never evicted. When the lowest
        leaf is a start state still awaiting its rollouts, eviction waits for the next record
        rather than dropping a better kernel; the archive may overshoot the cap until then.
        """
        best = self.best()
        while len(self.states) > self.max_size:
            order = {sid: pos for pos, sid in enumerate(self.states)}
            leaves = [
                s for s in self.states.values()
                if not s.is_root and not s.children and (best is None or s.id != best.id)
            ]  # fmt: skip
            if not leaves:
                return
            victim = min(leaves, key=lambda s: (s.reward, -order[s.id]))
            if victim.id in self.pending:
                return
            self._evict(victim.id)

    def _evict(self, state_id: str) -> None:
        state = self.states.pop(state_id)
        if state.parent is not None:
            self.states[state.parent].children.remove(state_id)
        key = normalise_code(state.code)
        if self._normalised.get(key) == state_id:
            del self._normalised[key]


def normalise_code(code: str) -> str:
    """Code with comments, trailing whitespace and blank lines removed (for deduplication)."""
    lines = code.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        tokens = []  # not valid Python: compare it with only whitespace normalised
    cuts = {tok.start[0]: tok.start[1] for tok in tokens if tok.type == tokenize.COMMENT}
    kept = []
    for number, line in enumerate(lines, start=1):
        text = line[: cuts[number]] if number in cuts else line
        text = text.rstrip()
        if text:
            kept.append(text)
    return "\n".join(kept)


def _extra(rollout: Rollout) -> dict[str, Any]:
    """What a state keeps of the rollout it came from besides its reward and runtime."""
    extra: dict[str, Any] = {"code_hash": rollout.code_hash, "speedup": rollout.speedup}
    if rollout.verdict is not None and rollout.verdict.gpu_compile:
        extra["gpu_compile"] = compact_gpu_compile(rollout.verdict.gpu_compile)
    return extra


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
