"""What a step leaves in the run folder besides its rollouts' history lines: the step record
(steps.jsonl), the one-line summary printed after it, and summary.json."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kerneldisc import __version__
from kerneldisc.rollout import Rollout
from kerneldisc.search.archive import OK, Archive, State


def step_record(step: int, rollouts: list[Rollout], archive: Archive, reference_us: float | None,
                learn: dict[str, Any], timing: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    best = archive.best()
    n = len(rollouts)
    rewards = [r.reward for r in rollouts]
    # Token counts exist only where the sampler sees token ids (not an OpenAI-compatible endpoint).
    counted = [
        len(r.completion.token_ids) for r in rollouts if r.completion is not None and r.completion.token_ids
    ]
    return {
        "step": step,
        "best_runtime_us": best.runtime_us if best else None,
        "best_speedup": state_speedup(best, reference_us),
        "correct_fraction": sum(r.status == OK for r in rollouts) / n if n else 0.0,
        "mean_beta": learn.get("mean_beta"),
        "loss": learn.get("loss"),
        "kl": learn.get("kl"),
        "groups_trained": learn.get("groups_trained"),
        "rewards": rewards,
        "statuses": [r.status for r in rollouts],
        "n_candidates": n,
        "n_gated": sum(r.status == "gated" for r in rollouts),
        "n_truncated": sum(r.truncated for r in rollouts),
        "n_language_ok": sum(bool(r.language_ok) for r in rollouts),
        "seconds_sampling": round(timing.get("sampling", 0.0), 3),
        "seconds_evaluating": round(timing.get("evaluating", 0.0), 3),
        "seconds_training": round(timing.get("training", 0.0), 3),
        # Added for experiment tracking (tracking.py); the keys above keep their meaning.
        "mean_reward": sum(rewards) / n if n else None,
        "max_reward": max(rewards) if n else None,
        "ratio": learn.get("ratio"),  # the trainer's mean importance ratio (1 when on-policy)
        "tokens_sampled": sum(counted) if counted else None,
        "tokens_trained": learn.get("train_tokens"),
        # Where the evaluation time went, summed over candidates: waiting for a free evaluator,
        # and being evaluated; and how many evaluators were alive when the step ended.
        "seconds_eval_queue_wait": round(timing.get("eval_queue_wait", 0.0), 3),
        "seconds_eval_busy": round(timing.get("eval_busy", 0.0), 3),
        "evaluators_alive": int(timing.get("evaluators_alive", 0)),
    }


def step_line(rec: dict[str, Any]) -> str:
    beta = f"{rec['mean_beta']:.3g}" if rec.get("mean_beta") is not None else "-"
    loss = f"{rec['loss']:.4g}" if rec.get("loss") is not None else "-"
    speed = f"{rec['best_speedup']:.3f}x" if rec.get("best_speedup") is not None else "-"
    truncated = f", {rec['n_truncated']} cut at max_new_tokens" if rec.get("n_truncated") else ""
    return (
        f"step {rec['step']}: best {fmt_us(rec['best_runtime_us'])} ({speed}), "
        f"correct {rec['correct_fraction']:.0%} of {rec['n_candidates']}{truncated}, beta {beta}, loss {loss}, "
        f"time sample/eval/train {rec['seconds_sampling']:.1f}/{rec['seconds_evaluating']:.1f}/"
        f"{rec['seconds_training']:.1f} s{_evaluators(rec)}"
    )


def _evaluators(rec: dict[str, Any]) -> str:
    """`, 3 evaluators (queue 1.2 s, evaluating 40.5 s)`: where the evaluation phase's time went."""
    if not rec.get("evaluators_alive"):
        return ""
    n = rec["evaluators_alive"]
    return (
        f", {n} evaluator{'s' if n != 1 else ''} (queue {rec.get('seconds_eval_queue_wait', 0):.1f} s, "
        f"evaluating {rec.get('seconds_eval_busy', 0):.1f} s)"
    )


def learning_line(run: Any) -> str:
    """The run in one line: correct fraction in the first and the second half of its steps, and
    the best kernel against the starting submission (`run`: the RunFolder)."""
    from kerneldisc.atomic import read_lines as read_jsonl

    steps = [
        r for r in read_jsonl(run.root / "steps.jsonl") if r.get("step", 0) > 0 and r.get("n_candidates")
    ]
    summary = run.summary() or {}
    parts = []
    if len(steps) >= 2:
        half = len(steps) // 2

        def fraction(rows: list[dict[str, Any]]) -> float:
            return sum(r["correct_fraction"] * r["n_candidates"] for r in rows) / sum(
                r["n_candidates"] for r in rows
            )

        parts.append(
            f"correct {fraction(steps[:half]):.0%} in steps 1-{half}, {fraction(steps[half:]):.0%} in steps "
            f"{half + 1}-{len(steps)}"
        )
    best, start = summary.get("best_runtime_us"), summary.get("start_runtime_us")
    if best and start:
        parts.append(
            f"best kernel {start / best:.3g}x the starting submission ({fmt_us(best)} vs {fmt_us(start)})"
        )
    return "learning: " + ("; ".join(parts) if parts else "too few steps to compare")


def summary(ctx: Any, steps_done: int) -> dict[str, Any]:
    """summary.json: the run's best so far and what it ran on (`ctx`: the RunContext)."""
    best = ctx.archive.best()
    previous = ctx.run.summary() or {}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    roots = [s for s in ctx.archive.states.values() if s.is_root and s.reward is not None]
    cfg = ctx.cfg
    return {
        "task": ctx.task.name,
        "task_path": str(ctx.task.path),
        "model": f"scripted replies ({cfg.script})"
        if cfg.policy == "scripted"
        else (cfg.model or "SmolLM2-135M-Instruct (embedded)"),  # fmt: skip
        "policy": cfg.policy,
        "device": "cpu" if ctx.device == "cpu" else "cuda",
        "device_name": (ctx.reference.device_facts or {}).get("name") or ctx.device,
        "train": cfg.train,
        "steps_completed": steps_done,
        "steps_planned": cfg.steps,
        "best_runtime_us": best.runtime_us if best else None,
        "best_speedup": state_speedup(best, ctx.reference.runtime_us),
        "best_candidate": "best_kernel.py" if best else None,
        "best_state": best.id if best else None,
        "reference_runtime_us": ctx.reference.runtime_us,
        "start_runtime_us": roots[0].runtime_us if roots else None,
        "kerneldisc_version": __version__,
        "started_at": previous.get("started_at", now),
        "updated_at": now,
    }


def state_speedup(state: State | None, reference_us: float | None = None) -> float | None:
    """The speedup the evaluator measured for a state; for a state that does not carry one,
    the reference's runtime over its own (never its reward, which may be 1000 / runtime)."""
    if state is None:
        return None
    if state.extra.get("speedup") is not None:
        return state.extra["speedup"]
    if reference_us and state.runtime_us:
        return reference_us / state.runtime_us
    return None


def fmt_us(value) -> str:
    return f"{value:.1f} µs" if isinstance(value, (int, float)) else "no runtime"
