"""One rollout: the one type that carries a completion through a step.

    policy.sample ──► Rollout(completion) ──► gate (code or why not) ──► evaluate (Verdict)
        ──► reward ──► archive.record_rollouts (state_id) ──► trainer.step (advantage)
        ──► record() ──► history.jsonl

The starting submission is a rollout too (step 0, no completion), so every history line comes
from `Rollout.record`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kerneldisc.evaluate.verdict import Verdict
from kerneldisc.policy.base import Completion

REWARDS = ("speedup", "inverse_runtime")
MESSAGE_CHARS = 2000  # of a verdict's message kept in the history


@dataclass
class Rollout:
    step: int
    parent: str | None  # the archive state it was sampled from; None for the starting submission
    group: int | None = None
    sample: int | None = None
    completion: Completion | None = None  # None for the starting submission
    reply: str | None = None  # the raw reply's file in the run folder
    code: str | None = None
    code_hash: str | None = None
    candidate: str | None = None  # the code's file in the run folder
    gate: str | None = None  # why the format gate stopped it before any evaluation
    verdict: Verdict | None = None
    reward: float = 0.0
    advantage: float | None = None  # set when its group is trained on
    state_id: str | None = None  # the archive state it became, if any
    cut: bool = False  # read back from a history line: the reply was cut at max_new_tokens
    language_ok: bool | None = None  # written in the task's kernel language (None: no code)

    @property
    def status(self) -> str:
        if self.gate is not None:
            return "gated"
        return self.verdict.status if self.verdict is not None else "pending"

    @property
    def pending(self) -> bool:
        return self.gate is None and self.verdict is None

    @property
    def message(self) -> str:
        if self.gate is not None:
            return self.gate
        return self.verdict.message if self.verdict is not None else ""

    @property
    def runtime_us(self) -> float | None:
        return self.verdict.runtime_us if self.verdict is not None else None

    @property
    def speedup(self) -> float | None:
        return self.verdict.speedup if self.verdict is not None else None

    @property
    def truncated(self) -> bool:
        """The reply was cut at the sampling budget (max_new_tokens) before it ended."""
        if self.completion is None:
            return self.cut
        return self.completion.finish_reason == "length"

    def judge(self, verdict: Verdict, reward_kind: str) -> None:
        self.verdict = verdict
        self.reward = reward_of(verdict, reward_kind)

    def record(self) -> dict[str, Any]:
        """The rollout's line in history.jsonl (the only place that format is written)."""
        return {
            "step": self.step, "group": self.group, "sample": self.sample, "parent": self.parent,
            "status": self.status, "reward": self.reward, "runtime_us": self.runtime_us, "speedup": self.speedup,
            "code_hash": self.code_hash, "candidate": self.candidate, "reply": self.reply,
            "message": self.message[:MESSAGE_CHARS], "state_id": self.state_id, "truncated": self.truncated,
            "interpreted": bool(self.verdict.interpreted) if self.verdict is not None else False,
            "advantage": self.advantage, "language_ok": self.language_ok,
            "gpu_compile": compact_gpu_compile(self.verdict.gpu_compile) if self.verdict is not None else [],
            **({"judged_by": self.verdict.judged_by} if self.verdict is not None and self.verdict.judged_by else {}),
        }  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any], task: str = "", device: str = "") -> Rollout:
        """A rollout as its history line tells it (no completion; the verdict's summary only).
        Lines written before a field existed read as its default."""
        rollout = cls(
            step=int(record["step"]), parent=record.get("parent"), group=record.get("group"),
            sample=record.get("sample"), reply=record.get("reply"), code_hash=record.get("code_hash"),
            candidate=record.get("candidate"), reward=float(record.get("reward") or 0.0),
            state_id=record.get("state_id"), cut=bool(record.get("truncated", False)),
            advantage=None if record.get("advantage") is None else float(record["advantage"]),
            language_ok=record.get("language_ok"),
        )  # fmt: skip
        status = str(record.get("status", "crash"))
        if status == "gated":
            rollout.gate = str(record.get("message", ""))
        elif status != "pending":
            rollout.verdict = Verdict(
                task=task, candidate=str(record.get("candidate") or ""), device=device, status=status,
                message=str(record.get("message", "")), runtime_us=record.get("runtime_us"),
                speedup=record.get("speedup"), interpreted=bool(record.get("interpreted", False)),
                gpu_compile=[e for e in record.get("gpu_compile") or [] if isinstance(e, dict)],
            )  # fmt: skip
        return rollout


def compact_gpu_compile(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A verdict's gpu_compile entries as the history, the archive and prompts keep them: per
    kernel and target, ok, registers, spilled bytes, shared memory and the first line of an error."""
    keep = ("kernel", "target", "ok", "registers", "spill_stores", "shared_bytes")
    out = []
    for e in entries:
        item = {k: e.get(k) for k in keep}
        if e.get("error"):
            item["error"] = str(e["error"]).splitlines()[0][:300]
        out.append(item)
    return out


def reward_of(verdict: Verdict, kind: str) -> float:
    """Failures earn 0; a correct kernel earns its measured speedup (or 1000 / runtime_us)."""
    if not verdict.correct:
        return 0.0
    if kind == "inverse_runtime":
        runtime = verdict.runtime_us or 0.0
        return 1000.0 / runtime if runtime > 0 else 0.0
    return float(verdict.speedup or 0.0)
