"""Rollout: its history line is the only format, and reading a line back loses nothing it holds."""

from __future__ import annotations

import json

from kerneldisc.evaluate import Verdict
from kerneldisc.policy.base import Completion
from kerneldisc.rollout import MESSAGE_CHARS, Rollout, reward_of


def through_history(rollout: Rollout) -> Rollout:
    return Rollout.from_record(json.loads(json.dumps(rollout.record())), task="t", device="cpu")


def sampled(finish_reason: str = "stop") -> Rollout:
    completion = Completion("```python\ncode\n```", [1, 2], [3, 4, 5], [-0.1, -0.2, -0.3], finish_reason)
    return Rollout(step=3, parent="s000002", group=1, sample=2, completion=completion, reply="replies/x.txt")


def test_a_judged_rollout_reads_back_as_it_was_written():
    rollout = sampled(finish_reason="length")
    rollout.code, rollout.code_hash, rollout.candidate = "code", "abc123", "candidates/abc123.py"
    verdict = Verdict(task="t", candidate="c.py", device="cpu", status="ok", message="passed",
                      runtime_us=12.5, speedup=2.5, interpreted=True)  # fmt: skip
    rollout.judge(verdict, "speedup")
    rollout.state_id, rollout.advantage = "s000007", 0.75
    back = through_history(rollout)
    assert back.record() == rollout.record()
    assert (back.status, back.reward, back.runtime_us, back.speedup) == ("ok", 2.5, 12.5, 2.5)
    assert back.truncated and back.advantage == 0.75 and back.verdict.interpreted
    assert back.completion is None  # tokens are not history: they live in the trainer's step only


def test_gated_failed_and_pending_rollouts_read_back_with_their_reason():
    gated = sampled()
    gated.gate = "no ```python block in the reply"
    failed = sampled()
    failed.judge(
        Verdict(task="t", candidate="c.py", device="cpu", status="timeout", message="x" * 5000), "speedup"
    )
    pending = sampled()
    for rollout in (gated, failed, pending):
        back = through_history(rollout)
        assert back.record() == {**rollout.record(), "message": rollout.message[:MESSAGE_CHARS]}
        assert back.reward == 0.0 and not back.truncated
    assert through_history(gated).status == "gated" and through_history(gated).message.startswith(
        "no ```python"
    )
    assert (
        through_history(failed).status == "timeout" and len(through_history(failed).message) == MESSAGE_CHARS
    )
    assert through_history(pending).pending


def test_a_history_line_written_before_the_newer_fields_reads_with_their_defaults():
    old = {"step": 1, "group": 0, "sample": 0, "parent": "s000000", "status": "ok", "reward": 1.5,
           "runtime_us": 10.0, "speedup": 1.5, "code_hash": "h", "candidate": "candidates/h.py",
           "message": "passed", "state_id": "s000001"}  # fmt: skip
    back = Rollout.from_record(old)
    assert (back.status, back.reward, back.state_id) == ("ok", 1.5, "s000001")
    assert back.advantage is None and not back.truncated and not back.verdict.interpreted


def test_rewards_are_zero_for_every_failure_and_the_speedup_or_inverse_runtime_otherwise():
    ok = Verdict(
        task="t", candidate="c", device="cpu", status="ok", message="", runtime_us=250.0, speedup=1.8
    )
    assert reward_of(ok, "speedup") == 1.8
    assert reward_of(ok, "inverse_runtime") == 4.0
    for status in ("incorrect", "crash", "timeout", "rejected", "compile_error"):
        bad = Verdict(
            task="t", candidate="c", device="cpu", status=status, message="", runtime_us=1.0, speedup=100.0
        )
        assert reward_of(bad, "speedup") == 0.0 and reward_of(bad, "inverse_runtime") == 0.0
