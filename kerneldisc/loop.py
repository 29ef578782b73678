"""The discovery loop: one step after another, each one durable before the next begins.

One step (TTT-Discover, arXiv 2601.16175, on one node), each phase a function of the run's
context (run_context.py) and the step's rollouts (rollout.py):
  1. select   — PUCT picks G start states from the archive, never two from one lineage
  2. sample   — K completions per start state (one prompt each): one Rollout per completion
  3. gate     — extract the code; malformed replies get reward 0 and a reason
  4. evaluate — the sandboxed evaluator judges the rest in parallel; reward = speedup
  5. archive  — every rollout counts as an expansion; correct ones become states
  6. learn    — entropic advantages per group (all-equal groups dropped), one LoRA step
  7. commit   — checkpoint atomically, publish the run folder, print one line
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from kerneldisc.atomic import no_interrupt
from kerneldisc.config import DiscoverConfig, make_config
from kerneldisc.errors import ConfigError
from kerneldisc.progress import bar
from kerneldisc.rollout import Rollout
from kerneldisc.run_context import Interrupted, RunContext, open_run
from kerneldisc.run_folder import RunFolder
from kerneldisc.step_record import learning_line, step_line, step_record, summary

# What a resume may change: how far the run goes, who watches it (trackers never change a result)
# and where evaluations run (a Ray cluster, how many evaluators); not what a step samples,
# rewards or learns.
RESUME_MAY_CHANGE = ("steps", "log", "ray", "eval_workers")


def config_for_resume(run_dir: Path, overrides: dict[str, Any]) -> DiscoverConfig:
    """A resumed run keeps its recorded settings; only `steps` may grow, and `log`, `ray` and
    `eval_workers` may change."""
    run = RunFolder.open(run_dir)
    recorded = run.config()
    allowed = {k: v for k, v in overrides.items() if k in RESUME_MAY_CHANGE and v is not None}
    changed = sorted(
        k
        for k, v in overrides.items()
        if v is not None and k not in RESUME_MAY_CHANGE and recorded.get(k) != v
    )
    if changed:
        raise ConfigError(
            f"--resume keeps the run's recorded settings; cannot change {', '.join(changed)} "
            f"(edit {run_dir / 'config.yml'} only if you know what you are doing)"
        )
    return make_config(recorded, allowed)


def run_discovery(cfg: DiscoverConfig, resume: Path | None = None, echo=print) -> Path:
    """Run (or continue) a discovery; returns the run folder."""
    ctx = open_run(cfg, resume, echo)  # a Ctrl-C in there is already an Interrupted
    try:
        for step in range(ctx.start_step + 1, cfg.steps + 1):
            one_step(ctx, step)
    except KeyboardInterrupt:
        raise Interrupted.of(ctx.run) from None
    finally:
        ctx.close()
    echo(learning_line(ctx.run))
    echo(f"done: {ctx.run.root} (best kernel: {ctx.run.root / 'best_kernel.py'})")
    return ctx.run.root


def one_step(ctx: RunContext, step: int) -> None:
    timing: dict[str, float] = {}
    seed_everything(ctx.cfg.seed, step)
    states = ctx.archive.select(ctx.cfg.groups)  # 1. select
    with _timed(timing, "sampling"):
        rollouts = sample(ctx, states, step)  # 2. sample
    with _timed(timing, "evaluating"):
        gate(ctx, rollouts)  # 3. gate
        spent = evaluate(ctx, rollouts)  # 4. evaluate
    timing["eval_queue_wait"] = spent.get("queue_wait_s", 0.0)
    timing["eval_busy"] = spent.get("evaluating_s", 0.0)
    timing["evaluators_alive"] = ctx.pool.evaluators_alive()
    record_in_archive(ctx, states, rollouts, step)  # 5. archive
    with _timed(timing, "training"):
        learned = learn(ctx, states, rollouts)  # 6. learn
    commit(ctx, step, rollouts, learned, timing)  # 7. commit


def seed_everything(seed: int, step: int) -> None:
    """The global generators (PUCT's ties, anything torch draws outside the samplers) reseeded
    from (seed, step) each step: nothing of theirs needs saving. Samplers keep a generator of their
    own, saved with every checkpoint (policy_state.pt), so a resumed run samples exactly as an
    uninterrupted one would."""
    import torch

    from kerneldisc.policy.base import derived_seed

    s = derived_seed(seed, step)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def sample(ctx: RunContext, states, step: int) -> list[Rollout]:
    """One batched call for all start states: the sampler fills its batch better than per prompt."""
    from kerneldisc.prompts import STOP, build_messages

    roles, trainer = ctx.roles, ctx.trainer
    shares_model = getattr(ctx.policy, "trainer", None) is trainer  # hf sampling the trainer's own model
    if (
        trainer is not None
        and roles is not None
        and set(roles.train) & set(roles.sample)
        and not shares_model
    ):
        trainer.release()  # the sampler gets the GPU they share
    best = ctx.archive.best()
    goal = ctx.cfg.target_us or (best.runtime_us * 0.5 if best and best.runtime_us else None)
    style = ctx.cfg.prompt
    prompts = [
        build_messages(ctx.task, s, goal, ctx.device, reference_us=ctx.reference.runtime_us, style=style)
        for s in states
    ]
    k = ctx.cfg.group_size
    with bar(total=len(states) * k, desc="sampling", unit="reply") as progress:
        # A compact prompt opens the reply's code block: the reply is done when it closes it.
        per_prompt = ctx.policy.sample(prompts, k, stop=STOP if style == "compact" else None)
        progress.update(len(states) * k)
    return [
        Rollout(step=step, parent=state.id, group=g, sample=i, completion=c)
        for g, (state, completions) in enumerate(zip(states, per_prompt, strict=True))
        for i, c in enumerate(completions)
    ]


def gate(ctx: RunContext, rollouts: list[Rollout]) -> None:
    """Keep every reply, extract the code, save it, and stop malformed replies (reward 0)."""
    from kerneldisc.prompts import extract_code, format_gate, language_problem

    require = ctx.cfg.require_language if ctx.cfg.require_language is not None else ctx.task.require_language
    for r in rollouts:
        r.reply = ctx.run.write_reply(r.completion.text)
        r.code = extract_code(r.completion.text)
        r.gate = format_gate(ctx.task, r.code, require_language=require)  # NO_CODE when there is none
        if r.code is not None:
            r.code_hash, r.candidate = ctx.run.write_candidate(r.code)
            r.language_ok = language_problem(ctx.task, r.code) is None


def evaluate(ctx: RunContext, rollouts: list[Rollout]) -> dict[str, float]:
    roles = ctx.roles
    if roles is not None and roles.eval_shares_gpu:
        ctx.policy.release()  # evaluators never time a kernel beside another role
        if ctx.trainer is not None:
            ctx.trainer.release()
    ctx.pool.run(rollouts)
    return ctx.pool.stats


def record_in_archive(ctx: RunContext, states, rollouts: list[Rollout], step: int) -> None:
    for state in states:
        mine = [r for r in rollouts if r.parent == state.id]
        for r, sid in zip(mine, ctx.archive.record_rollouts(state.id, mine, step), strict=True):
            r.state_id = sid


def learn(ctx: RunContext, states, rollouts: list[Rollout]) -> dict[str, Any]:
    """Advantages per group (all-equal groups carry no signal and are dropped, as published),
    then one trainer step on every rollout of the kept groups."""
    from kerneldisc.learn import entropic_advantages, mean_baseline_advantages

    betas, kept_groups, trained = [], 0, []
    for state in states:
        group = [r for r in rollouts if r.parent == state.id]
        rewards = np.array([r.reward for r in group], dtype=float)
        if len(group) < 2 or np.all(rewards == rewards[0]):
            continue
        kept_groups += 1
        if ctx.cfg.advantage == "mean":
            advantages = mean_baseline_advantages(rewards)
        else:
            advantages, beta = entropic_advantages(rewards, beta=ctx.cfg.beta)
            betas.append(float(beta))
        for r, a in zip(group, advantages, strict=True):
            r.advantage = float(a)
        trained += group
    result: dict[str, Any] = {
        "groups_trained": kept_groups,
        "mean_beta": float(np.mean(betas)) if betas else None,
    }
    if ctx.trainer is None or not trained:
        return result
    stats = ctx.trainer.step(trained)
    result.update({"loss": stats.get("loss"), "kl": stats.get("kl"), "train_tokens": stats.get("tokens"),
                   "ratio": stats.get("ratio_mean")})  # fmt: skip
    ctx.policy.load_adapter(ctx.trainer.save_adapter_for_sampling())
    return result


def commit(
    ctx: RunContext, step: int, rollouts: list[Rollout], learned: dict[str, Any], timing: dict
) -> None:
    """Make the step durable and publish it; a Ctrl-C meanwhile waits until it is done, so the run
    folder is never left between a checkpoint and its views."""
    import torch

    record = step_record(step, rollouts, ctx.archive, ctx.reference.runtime_us, learned, timing)
    best = ctx.archive.best()
    with no_interrupt():
        ctx.run.commit_step(
            step, ctx.archive.to_dict(), [r.record() for r in rollouts], record, summary(ctx, step),
            save_adapter=ctx.trainer.save if ctx.trainer is not None else None,
            best_code=best.code if best else None,
            save_policy_state=lambda path: torch.save(ctx.policy.state_dict(), path),
        )  # fmt: skip
    ctx.echo(step_line(record))
    if ctx.trackers is not None:  # only a durable step is shown; a tracker's failure never stops the run
        ctx.trackers.log_step(record, best.code if best else None)


@contextmanager
def _timed(timing: dict[str, float], phase: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timing[phase] = timing.get(phase, 0.0) + time.perf_counter() - start
