"""The discovery loop: one step after another, each one durable before the next begins.

One step (TTT-Discover, arXiv 2601.16175, on one node):
  1. select   — PUCT picks G start states from the archive, never two from one lineage
  2. sample   — K completions per start state (one prompt each)
  3. gate     — extract the code; malformed replies become reward-0 rollouts with a reason
  4. evaluate — the sandboxed evaluator judges the rest in parallel; reward = speedup
  5. archive  — every rollout counts as an expansion; correct ones become states
  6. learn    — entropic advantages per group (all-equal groups dropped), one LoRA step
  7. commit   — checkpoint atomically, publish the run folder, print one line
"""

from __future__ import annotations

import logging
import queue
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from kerneldisc import __version__
from kerneldisc.config import DiscoverConfig, make_config
from kerneldisc.errors import ConfigError
from kerneldisc.gpus import GpuRoles, parse_gpus
from kerneldisc.progress import bar
from kerneldisc.run_folder import RunFolder
from kerneldisc.task import Task, load_task

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """Ctrl-C during a run: the last finished step is on disk; say how to continue."""

    def __init__(self, run_dir: Path, steps_completed: int):
        super().__init__(
            f"interrupted after {steps_completed} finished step(s); "
            f"continue with: kerneldisc discover --resume {run_dir}"
        )
        self.run_dir = run_dir


@dataclass
class Rollout:
    parent: str
    group: int
    sample: int
    completion: Any
    code: str | None = None
    code_hash: str | None = None
    candidate: str | None = None
    reply: str | None = None
    status: str = "pending"  # until the gate or the evaluator says otherwise
    reward: float = 0.0
    runtime_us: float | None = None
    speedup: float | None = None
    message: str = ""
    state_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, step: int) -> dict[str, Any]:
        return {
            "step": step, "group": self.group, "sample": self.sample, "parent": self.parent,
            "status": self.status, "reward": self.reward, "runtime_us": self.runtime_us,
            "speedup": self.speedup, "code_hash": self.code_hash, "candidate": self.candidate, "reply": self.reply,
            "message": self.message[:2000], "state_id": self.state_id,
        }  # fmt: skip


# --- setting up a run -----------------------------------------------------------------------


def default_out_dir(task: Task) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("results") / task.name / stamp


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but no CUDA GPU is visible")
    return device


def config_for_resume(run_dir: Path, overrides: dict[str, Any]) -> DiscoverConfig:
    """A resumed run keeps its recorded settings; only `steps` may grow."""
    run = RunFolder.open(run_dir)
    recorded = run.config()
    allowed = {k: v for k, v in overrides.items() if k == "steps" and v is not None}
    changed = sorted(
        k for k, v in overrides.items() if v is not None and k != "steps" and recorded.get(k) != v
    )
    if changed:
        raise ConfigError(
            f"--resume keeps the run's recorded settings; cannot change {', '.join(changed)} "
            f"(edit {run_dir / 'config.yml'} only if you know what you are doing)"
        )
    return make_config(recorded, allowed)


# --- the loop -------------------------------------------------------------------------------


def run_discovery(cfg: DiscoverConfig, resume: Path | None = None, echo=print) -> Path:
    """Run (or continue) a discovery; returns the run folder."""
    task = load_task(cfg.task)
    device = resolve_device(cfg.device)
    roles = _roles(cfg, device)
    model_dir = _model_dir(cfg)  # a missing model is an error before anything is written
    if resume is not None:
        run = RunFolder.open(resume)
        run.write_config(cfg.to_dict())
    else:
        out = Path(cfg.out) if cfg.out else default_out_dir(task)
        run = RunFolder.create(out, cfg.to_dict())
    echo(f"run folder: {run.root}")
    try:
        _run(cfg, task, device, roles, run, model_dir, echo)
    except KeyboardInterrupt:
        latest = run.latest()
        raise Interrupted(run.root, latest.step if latest else 0) from None
    echo(f"done: {run.root} (best kernel: {run.root / 'best_kernel.py'})")
    return run.root


def _run(cfg: DiscoverConfig, task: Task, device: str, roles, run: RunFolder, model_dir, echo) -> None:
    from kerneldisc.evaluate import EvalConfig

    eval_devices = _eval_devices(device, roles)
    eval_cfg = EvalConfig(
        device=eval_devices[0], timeout_s=cfg.eval_timeout_s, memory_limit_mb=cfg.eval_memory_mb
    )
    reference = _reference(run, task, eval_cfg, echo)
    archive, start_step = _archive(run, task, cfg, eval_cfg, reference, echo)
    policy, trainer = _learner(cfg, run, roles, model_dir)
    target_us = cfg.target_us

    evaluator = Evaluator(task, eval_cfg, reference, eval_devices, cfg)
    try:
        for step in range(start_step + 1, cfg.steps + 1):
            timing: dict[str, float] = {}
            seed_everything(cfg.seed, step)

            # 1. select
            states = archive.select(cfg.groups)

            # 2. sample
            t0 = time.perf_counter()
            if trainer is not None and roles is not None and set(roles.train) & set(roles.sample):
                trainer.release()  # the sampler gets the GPU they share
            best = archive.best()
            goal = target_us or (best.runtime_us * 0.5 if best and best.runtime_us else None)
            rollouts = sample_rollouts(
                policy, task, states, cfg.group_size, goal, device, reference.runtime_us
            )
            timing["sampling"] = time.perf_counter() - t0

            # 3. gate, 4. evaluate
            t0 = time.perf_counter()
            if roles is not None and roles.eval_shares_gpu:
                policy.release()  # evaluators never time a kernel beside another role
                if trainer is not None:
                    trainer.release()
            gate_and_store(rollouts, task, run)
            evaluator.run(rollouts)
            timing["evaluating"] = time.perf_counter() - t0

            # 5. archive
            for state in states:
                mine = [r for r in rollouts if r.parent == state.id]
                created = archive.record_rollouts(state.id, [_archive_rollout(r) for r in mine], step)
                for r, sid in zip(mine, created, strict=True):
                    r.state_id = sid

            # 6. learn
            t0 = time.perf_counter()
            learn = learn_step(trainer, policy, rollouts, states, cfg, run)
            timing["training"] = time.perf_counter() - t0

            # 7. commit
            record = _step_record(step, rollouts, archive, learn, timing)
            _commit(run, step, archive, rollouts, record, cfg, task, device, reference, trainer, policy)
            echo(_step_line(record))
    finally:
        evaluator.close()


def seed_everything(seed: int, step: int) -> None:
    """Per-step seeds derived from (seed, step): a resumed run samples exactly as an
    uninterrupted one would, with no generator state to save."""
    import torch

    s = (seed * 1_000_003 + step) % (2**31 - 1)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def sample_rollouts(
    policy, task: Task, states, k: int, target_us, device: str, reference_us
) -> list[Rollout]:
    """One batched call for all start states: the sampler fills its batch better than per prompt."""
    from kerneldisc.prompts import build_messages

    prompts = [build_messages(task, s, target_us, device, reference_us=reference_us) for s in states]
    with bar(total=len(states) * k, desc="sampling", unit="reply") as progress:
        per_prompt = policy.sample(prompts, k)
        progress.update(len(states) * k)
    return [
        Rollout(parent=state.id, group=g, sample=i, completion=c)
        for g, (state, completions) in enumerate(zip(states, per_prompt, strict=True))
        for i, c in enumerate(completions)
    ]


def gate_and_store(rollouts: list[Rollout], task: Task, run: RunFolder) -> None:
    """Extract code, apply the task's format gate, save every extracted candidate."""
    from kerneldisc.prompts import extract_code, format_gate

    for r in rollouts:
        r.reply = run.write_reply(r.completion.text)
        r.code = extract_code(r.completion.text)
        if r.code is not None:
            r.code_hash, r.candidate = run.write_candidate(r.code)
        reason = format_gate(task, r.code) if r.code is not None else "no ```python code block in the reply"
        if reason is not None:
            r.status, r.reward, r.message = "gated", 0.0, reason


class Evaluator:
    """Evaluates the gated-through rollouts of a step in parallel: one worker per evaluation
    GPU, or a small CPU pool. Whatever happens inside, every rollout gets a verdict."""

    def __init__(self, task: Task, eval_cfg, reference, devices: list[str], cfg: DiscoverConfig):
        self.task, self.reference, self.cfg = task, reference, cfg
        # One CPU worker: two evaluations timing at once on a small CPU disturb each other's numbers.
        workers = cfg.eval_workers or (len(devices) if devices[0] != "cpu" else 1)
        self.devices: queue.Queue[str] = queue.Queue()
        for i in range(workers):
            self.devices.put(devices[i % len(devices)])
        self.base_cfg = eval_cfg
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kerneldisc-eval")

    def run(self, rollouts: list[Rollout]) -> None:
        todo = [r for r in rollouts if r.status == "pending"]
        unique: dict[str, list[Rollout]] = {}
        for r in todo:
            unique.setdefault(r.code_hash, []).append(r)
        with bar(total=len(todo), desc="evaluating", unit="kernel") as progress:
            futures = {self.pool.submit(self._one, group[0].code): group for group in unique.values()}
            for future, group in futures.items():
                verdict = future.result()
                for r in group:
                    _apply_verdict(r, verdict, self.cfg.reward)
                progress.update(len(group))

    def _one(self, code: str) -> dict[str, Any]:
        from dataclasses import replace

        from kerneldisc.evaluate import evaluate

        device = self.devices.get()
        try:
            verdict = evaluate(
                self.task, code, replace(self.base_cfg, device=device), reference=self.reference
            )
            return verdict.to_dict()
        except Exception as exc:  # the evaluator itself failed: a recorded failure, never a stop
            log.exception("evaluator failed")
            return {"status": "crash", "correct": False, "message": f"evaluator failed: {exc!r}"}
        finally:
            self.devices.put(device)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _apply_verdict(r: Rollout, verdict: dict[str, Any], reward_kind: str) -> None:
    r.status = str(verdict.get("status", "crash"))
    r.message = str(verdict.get("message", ""))
    r.runtime_us = verdict.get("runtime_us")
    r.speedup = verdict.get("speedup")
    r.reward = reward_of(verdict, reward_kind)


def reward_of(verdict: dict[str, Any], kind: str) -> float:
    """Failures earn 0; a correct kernel earns its measured speedup (or 1000 / runtime_us)."""
    if verdict.get("status") != "ok" or not verdict.get("correct"):
        return 0.0
    if kind == "inverse_runtime":
        runtime = verdict.get("runtime_us") or 0.0
        return 1000.0 / runtime if runtime > 0 else 0.0
    return float(verdict.get("speedup") or 0.0)


def learn_step(trainer, policy, rollouts: list[Rollout], states, cfg: DiscoverConfig, run: RunFolder):
    from kerneldisc.learn import entropic_advantages, mean_baseline_advantages

    betas, samples, kept = [], [], 0
    for state in states:
        group = [r for r in rollouts if r.parent == state.id]
        rewards = np.array([r.reward for r in group], dtype=float)
        if len(group) < 2 or np.all(rewards == rewards[0]):
            continue  # no signal: all-equal groups are dropped (as published)
        kept += 1
        if cfg.advantage == "mean":
            adv = mean_baseline_advantages(rewards)
        else:
            adv, beta = entropic_advantages(rewards, beta=cfg.beta)
            betas.append(float(beta))
        samples.extend((r.completion, float(a)) for r, a in zip(group, adv, strict=True))
    result: dict[str, Any] = {"groups_trained": kept, "mean_beta": float(np.mean(betas)) if betas else None}
    if trainer is None or not samples:
        return result
    stats = trainer.step(samples)
    result.update({"loss": stats.get("loss"), "kl": stats.get("kl"), "train_tokens": stats.get("tokens")})
    policy.load_adapter(trainer.save_adapter_for_sampling())
    return result


# --- pieces of set-up -----------------------------------------------------------------------


def _roles(cfg: DiscoverConfig, device: str) -> GpuRoles | None:
    if device == "cpu":
        if cfg.gpus:
            raise ConfigError("--gpus given with a CPU device")
        return None
    import torch

    if device.startswith("cuda:") and not cfg.gpus:
        n = int(device.split(":")[1])
        return GpuRoles((n,), (n,), (n,))
    return parse_gpus(cfg.gpus, torch.cuda.device_count())


def _eval_devices(device: str, roles: GpuRoles | None) -> list[str]:
    if roles is None:
        return ["cpu"]
    return [f"cuda:{i}" for i in roles.eval]


def _reference(run: RunFolder, task: Task, eval_cfg, echo):
    """The reference is timed once per run, with the evaluator's protocol, and kept so a
    resumed run rewards against the same yardstick."""
    from kerneldisc.evaluate import ReferenceTiming, measure_reference
    from kerneldisc.evaluate.verdict import timing_method

    stored = run.load_reference()
    if stored is not None:
        reference = ReferenceTiming.from_dict(stored)
        if reference.method == timing_method(reference.device):
            return reference
        # Timed by an older evaluator (another clock): rewards from here on use a fresh yardstick.
        echo(
            f"reference.json was timed by an older evaluator ({reference.method or 'wall clock'}); timing it again"
        )
    echo(f"timing the reference of {task.name} on {eval_cfg.device} ...")
    reference = measure_reference(task, eval_cfg)
    run.save_reference(reference.to_dict())
    echo(f"reference: {reference.runtime_us:.1f} µs")
    return reference


def _archive(run: RunFolder, task: Task, cfg: DiscoverConfig, eval_cfg, reference, echo):
    from kerneldisc.search import Archive

    ckpt = run.latest()
    if ckpt is not None:
        run.publish(ckpt)  # undo whatever an unfinished step left at the top level
        archive = Archive.load(run.root / "archive.json")
        echo(f"resuming after step {ckpt.step}")
        return archive, ckpt.step

    from kerneldisc.evaluate import evaluate

    # overwrite: a run killed before its first checkpoint left a half-made archive behind
    archive = Archive.create(
        run.root / "archive.json", c=cfg.puct_c, top_children=cfg.top_children, max_size=cfg.max_archive,
        overwrite=True,
    )  # fmt: skip
    history = []
    start = task.submission_source
    if start is not None:
        echo("evaluating the starting submission ...")
        verdict = evaluate(task, start, eval_cfg, reference=reference).to_dict()
        digest, rel = run.write_candidate(start)
        reward = reward_of(verdict, cfg.reward)
        root = archive.add_root(
            start, reward, verdict.get("runtime_us"), verdict["status"], verdict["message"]
        )
        history.append(
            {"step": 0, "group": None, "sample": None, "parent": None, "status": verdict["status"],
             "reward": reward, "runtime_us": verdict.get("runtime_us"), "speedup": verdict.get("speedup"),
             "code_hash": digest, "candidate": rel, "message": verdict["message"][:2000], "state_id": root.id}
        )  # fmt: skip
        echo(f"starting submission: {verdict['status']}, {_fmt_us(verdict.get('runtime_us'))}")
    if cfg.empty_root or start is None:
        archive.add_empty_root()
    archive.save()
    summary = _summary(cfg, task, run, archive, reference, eval_cfg.device, 0)
    best = archive.best()
    run.commit_step(
        0, run.root / "archive.json", history, None, summary, best_code=best.code if best else None
    )
    return archive, 0


def _model_dir(cfg: DiscoverConfig) -> Path | None:
    """The local model folder; None where no weights are needed (the openai policy names a
    remote model; a frozen scripted run loads none)."""
    from kerneldisc.policy import resolve_model

    if cfg.policy == "vllm":
        from kerneldisc.policy.vllm import require_vllm

        require_vllm()
    if cfg.policy in ("hf", "vllm") or cfg.train:
        return resolve_model(cfg.model)
    return None


def _learner(cfg: DiscoverConfig, run: RunFolder, roles: GpuRoles | None, model_dir: Path | None):
    from kerneldisc.policy import make_policy

    sample_device = f"cuda:{roles.sample[0]}" if roles else "cpu"
    train_device = f"cuda:{roles.train[0]}" if roles else "cpu"
    ckpt = run.latest()
    trainer = None
    if cfg.train:
        from kerneldisc.learn.trainer import Trainer, TrainerConfig

        tcfg = TrainerConfig(
            lora_rank=cfg.lora_rank, lr=cfg.lr, kl_coef=cfg.kl_coef, token_budget=cfg.token_budget,
            device=train_device, temperature=cfg.temperature, seed=cfg.seed,
        )  # fmt: skip
        if ckpt is not None and ckpt.adapter is not None:
            trainer = Trainer.load(model_dir, ckpt.adapter, tcfg)
        else:
            trainer = Trainer(model_dir, tcfg)
    if cfg.policy == "scripted":
        from kerneldisc.policy.scripted import ScriptedPolicy

        policy = ScriptedPolicy(cfg.script, trainer=trainer)
    else:
        policy = make_policy(
            cfg.policy, model=model_dir or cfg.model, device=sample_device,
            seed=cfg.seed, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
            base_url=cfg.base_url, api_key_env=cfg.api_key_env, trainer=trainer,
        )  # fmt: skip
    if ckpt is not None and ckpt.policy_state is not None:
        import torch

        policy.load_state_dict(torch.load(ckpt.policy_state, weights_only=False))
    if trainer is not None and trainer.step_count > 0:
        policy.load_adapter(trainer.save_adapter_for_sampling())
    return policy, trainer


# --- records --------------------------------------------------------------------------------


def _archive_rollout(r: Rollout) -> dict[str, Any]:
    return {
        "code": r.code or "", "reward": r.reward, "runtime_us": r.runtime_us, "status": r.status,
        "message": r.message, "extra": {"code_hash": r.code_hash, "speedup": r.speedup},
    }  # fmt: skip


def _step_record(step: int, rollouts: list[Rollout], archive, learn: dict, timing: dict) -> dict[str, Any]:
    best = archive.best()
    n = len(rollouts)
    return {
        "step": step,
        "best_runtime_us": best.runtime_us if best else None,
        "best_speedup": _speedup(best),
        "correct_fraction": sum(r.status == "ok" for r in rollouts) / n if n else 0.0,
        "mean_beta": learn.get("mean_beta"),
        "loss": learn.get("loss"),
        "kl": learn.get("kl"),
        "groups_trained": learn.get("groups_trained"),
        "rewards": [r.reward for r in rollouts],
        "statuses": [r.status for r in rollouts],
        "n_candidates": n,
        "n_gated": sum(r.status == "gated" for r in rollouts),
        "seconds_sampling": round(timing.get("sampling", 0.0), 3),
        "seconds_evaluating": round(timing.get("evaluating", 0.0), 3),
        "seconds_training": round(timing.get("training", 0.0), 3),
    }


def _speedup(state) -> float | None:
    if state is None:
        return None
    return state.extra.get("speedup") if state.extra.get("speedup") is not None else state.reward


def _summary(cfg, task: Task, run: RunFolder, archive, reference, device: str, steps_done: int) -> dict:
    best = archive.best()
    previous = {}
    if (run.root / "summary.json").is_file():
        import json

        previous = json.loads((run.root / "summary.json").read_text())
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    roots = [s for s in archive.states.values() if s.is_root and s.reward is not None]
    return {
        "task": task.name,
        "task_path": str(task.path),
        "model": _model_name(cfg),
        "policy": cfg.policy,
        "device": "cpu" if device == "cpu" else "cuda",
        "device_name": (reference.device_facts or {}).get("name") or device,
        "train": cfg.train,
        "steps_completed": steps_done,
        "steps_planned": cfg.steps,
        "best_runtime_us": best.runtime_us if best else None,
        "best_speedup": _speedup(best),
        "best_candidate": "best_kernel.py" if best else None,
        "best_state": best.id if best else None,
        "reference_runtime_us": reference.runtime_us,
        "start_runtime_us": roots[0].runtime_us if roots else None,
        "kerneldisc_version": __version__,
        "started_at": previous.get("started_at", now),
        "updated_at": now,
    }


def _model_name(cfg: DiscoverConfig) -> str:
    if cfg.policy == "scripted":
        return f"scripted replies ({cfg.script})"
    return cfg.model or "SmolLM2-135M-Instruct (embedded)"


def _commit(run, step, archive, rollouts, record, cfg, task, device, reference, trainer, policy) -> None:
    import torch

    archive.save()
    best = archive.best()
    run.commit_step(
        step,
        run.root / "archive.json",
        [r.record(step) for r in rollouts],
        record,
        _summary(cfg, task, run, archive, reference, device, step),
        save_adapter=trainer.save if trainer is not None else None,
        best_code=best.code if best else None,
        save_policy_state=lambda path: torch.save(policy.state_dict(), path),
    )


def _fmt_us(value) -> str:
    return f"{value:.1f} µs" if isinstance(value, (int, float)) else "no runtime"


def _step_line(rec: dict[str, Any]) -> str:
    beta = f"{rec['mean_beta']:.3g}" if rec.get("mean_beta") is not None else "-"
    loss = f"{rec['loss']:.4g}" if rec.get("loss") is not None else "-"
    speed = f"{rec['best_speedup']:.3f}x" if rec.get("best_speedup") is not None else "-"
    return (
        f"step {rec['step']}: best {_fmt_us(rec['best_runtime_us'])} ({speed}), "
        f"correct {rec['correct_fraction']:.0%} of {rec['n_candidates']}, beta {beta}, loss {loss}, "
        f"time sample/eval/train {rec['seconds_sampling']:.1f}/{rec['seconds_evaluating']:.1f}/"
        f"{rec['seconds_training']:.1f} s"
    )
