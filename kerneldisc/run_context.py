"""Everything a discovery run holds, built once when it starts or resumes: the task, the devices
and their roles, the evaluator's settings and the reference timing, the archive, the policy and
the trainer, the evaluation pool and the run folder. The loop's phases are functions of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kerneldisc.atomic import no_interrupt
from kerneldisc.config import DiscoverConfig
from kerneldisc.devices import resolve_device, visible_gpus
from kerneldisc.errors import ConfigError
from kerneldisc.evaluate import EvalConfig, ReferenceTiming
from kerneldisc.evaluation_pool import EvaluationPool
from kerneldisc.gpus import GpuRoles, parse_gpus
from kerneldisc.rollout import Rollout
from kerneldisc.run_folder import Checkpoint, RunFolder
from kerneldisc.search import Archive
from kerneldisc.step_record import fmt_us, summary
from kerneldisc.task import Task, load_task
from kerneldisc.tracking import Trackers, open_trackers, require

if TYPE_CHECKING:
    from kerneldisc.learn.trainer import Trainer
    from kerneldisc.policy import Policy


@dataclass
class RunContext:
    cfg: DiscoverConfig
    task: Task
    run: RunFolder
    device: str  # cpu, cuda (the visible GPUs, in roles) or cuda:N
    roles: GpuRoles | None  # None on the CPU
    eval_cfg: EvalConfig
    reference: ReferenceTiming
    archive: Archive
    start_step: int  # the last finished step (0: only the starting submission)
    policy: Policy
    trainer: Trainer | None
    pool: EvaluationPool
    echo: Callable[[str], None]
    trackers: Trackers | None = None  # experiment tracking (--log); shown each step after its commit

    def close(self) -> None:
        try:
            self.pool.close()
        finally:
            if self.trackers is not None:
                self.trackers.close()


class Interrupted(Exception):
    """Ctrl-C during a run: every finished step is on disk; say how to continue."""

    def __init__(self, run_dir: Path, steps_completed: int):
        super().__init__(
            f"interrupted after {steps_completed} finished step(s); "
            f"continue with: kerneldisc discover --resume {run_dir}"
        )
        self.run_dir = run_dir

    @classmethod
    def of(cls, run: RunFolder) -> Interrupted:
        latest = run.latest()
        return cls(run.root, latest.step if latest else 0)


def open_run(
    cfg: DiscoverConfig, resume: Path | None = None, echo: Callable[[str], None] = print
) -> RunContext:
    """Start a run (or resume one). Every check a user can fail, the policy and the trainer
    included, comes before a new run folder is written; a Ctrl-C once it exists is an
    Interrupted that says how to resume (a folder with no finished step resumes from scratch)."""
    task = load_task(cfg.task)
    require(cfg.log)  # a tracker asked for but not installed: one line, before anything is loaded
    device = resolve_device(cfg.device)
    roles = gpu_roles(cfg, device)
    model_dir = _model_dir(cfg)
    cfg = cfg.concrete(model_dir, device)  # what config.yml records, so a resume samples alike
    cluster = _cluster(cfg, device, task, echo)  # an address nobody answers at fails here, before any write
    run = RunFolder.open(resume) if resume is not None else None
    policy, trainer = _learner(cfg, run.latest() if run is not None else None, roles, model_dir)
    if run is not None:
        run.write_config(cfg.to_dict())
    else:
        run = RunFolder.create(Path(cfg.out) if cfg.out else default_out_dir(task), cfg.to_dict())
    try:
        echo(f"run folder: {run.root}")
        return _open(cfg, task, run, device, roles, policy, trainer, echo, cluster)
    except KeyboardInterrupt:
        raise Interrupted.of(run) from None


def _open(cfg, task, run, device, roles, policy, trainer, echo, cluster=None) -> RunContext:
    if cluster is not None:
        eval_cfg = EvalConfig(device="cuda:0" if cluster.kind == "cuda" else "cpu",
                              timeout_s=cfg.eval_timeout_s, memory_limit_mb=cfg.eval_memory_mb)  # fmt: skip
        reference, pool = _ray_pool(cfg, run, task, eval_cfg, cluster, echo)
    else:
        eval_devices = ["cpu"] if roles is None else [f"cuda:{i}" for i in roles.eval]
        eval_cfg = EvalConfig(
            device=eval_devices[0], timeout_s=cfg.eval_timeout_s, memory_limit_mb=cfg.eval_memory_mb
        )
        reference = _reference(run, task, eval_cfg, echo)
        pool = EvaluationPool(task, eval_cfg, reference, eval_devices, cfg.eval_workers, cfg.reward)
    ctx = RunContext(cfg=cfg, task=task, run=run, device=device, roles=roles, eval_cfg=eval_cfg,
                     reference=reference, archive=Archive(c=cfg.puct_c, top_children=cfg.top_children,
                     max_size=cfg.max_archive), start_step=0, policy=policy, trainer=trainer, pool=pool,
                     echo=echo)  # fmt: skip
    try:
        ctx.archive, ctx.start_step = _archive(ctx)
        ctx.trackers = open_trackers(cfg, run, echo)  # caught up with every committed step
    except BaseException:
        pool.close()
        raise
    return ctx


def default_out_dir(task: Task) -> Path:
    return Path("results") / task.name / datetime.now().strftime("%Y%m%d-%H%M%S")


def gpu_roles(cfg: DiscoverConfig, device: str) -> GpuRoles | None:
    if device == "cpu":
        if cfg.gpus:
            raise ConfigError("--gpus given with a CPU device")
        return None
    if device.startswith("cuda:") and not cfg.gpus:
        n = int(device.split(":")[1])
        return GpuRoles((n,), (n,), (n,))
    return parse_gpus(cfg.gpus, len(visible_gpus()))


def _reference(run: RunFolder, task: Task, eval_cfg: EvalConfig, echo) -> ReferenceTiming:
    """The reference is timed once per run, with the evaluator's protocol, and kept so a resumed
    run rewards against the same yardstick."""
    from kerneldisc.evaluate import measure_reference
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


def _cluster(cfg: DiscoverConfig, device: str, task: Task, echo):
    """The Ray cluster's evaluators (`--ray`), or None (ray_evaluators.join says which kind).
    The task is packed for the nodes here too, so a task too big to send fails before any write."""
    if cfg.ray is None:
        return None
    from kerneldisc.ray_evaluators import join

    cluster = join(cfg.ray, device, cfg.device, cfg.eval_workers, echo)
    _comparable(cfg, cluster.groups())
    cluster.bundle(task)
    return cluster


def _comparable(cfg: DiscoverConfig, groups) -> None:
    """A speedup is against the reference of its own device group; a runtime reward is not
    comparable across GPU models, so it runs on one group only."""
    if cfg.reward != "speedup" and len(set(groups)) > 1:
        raise ConfigError(
            f"reward {cfg.reward} compares runtimes, which differ between devices "
            f"({', '.join(sorted(set(groups)))}); use reward speedup on a mixed cluster"
        )


def _ray_pool(cfg, run: RunFolder, task: Task, eval_cfg: EvalConfig, cluster, echo):
    """The reference of each device group that judges (kept in references.json as it is timed,
    so a resumed run rewards against the same yardsticks) and the pool over the cluster.
    reference.json holds the first group's, which prompts and summaries quote; it is never
    timed again (a run begun without Ray keeps it as the yardstick of the group it was timed on)."""
    import threading

    from kerneldisc.evaluation_pool import RayEvaluationPool

    references = {group: ReferenceTiming.from_dict(d) for group, d in run.load_references().items()}
    first = run.load_reference()
    if first is not None and not references:  # begun without --ray: its reference's own group
        reference = ReferenceTiming.from_dict(first)
        references[_group_of(reference)] = reference
        run.save_references({g: r.to_dict() for g, r in references.items()})
    _comparable(cfg, [*references, *cluster.groups()])
    lock = threading.Lock()

    def keep(group: str, reference: ReferenceTiming) -> None:
        with lock:
            known = references.copy()  # one C-level copy: other evaluations may add a group meanwhile
            _comparable(cfg, [*known, group])
            run.save_references({g: r.to_dict() for g, r in known.items()})

    if first is not None:
        reference = ReferenceTiming.from_dict(first)
    else:
        _, reference = cluster.reference(task, eval_cfg, references, on_new=keep)
        run.save_reference(reference.to_dict())
    echo(f"reference: {reference.runtime_us:.1f} µs")
    return reference, RayEvaluationPool(task, eval_cfg, cluster, cfg.reward, references, keep)


def _group_of(reference: ReferenceTiming) -> str:
    """The device group a reference timed without Ray belongs to, named as an evaluator names
    its own (ray_evaluators.EvaluatorActor.identity): this machine's CPU, or the GPU's model."""
    import socket

    if reference.device == "cpu":
        return f"cpu@{socket.gethostname()}"
    return str(reference.device_facts.get("name") or reference.device)


def _archive(ctx: RunContext) -> tuple[Archive, int]:
    """The archive of the latest checkpoint, or a new one: the starting submission judged as the
    first rollout (step 0), and the empty root."""

    latest = ctx.run.latest()
    if latest is not None:
        ctx.echo(f"resuming after step {latest.step}")
        archive = ctx.run.load_archive()
        archive.ensure_roots(ctx.cfg.groups)  # an archive from before one root per group
        return archive, latest.step
    archive = ctx.archive
    history: list[Rollout] = []
    start = ctx.task.submission_source
    if start is not None:
        ctx.echo("evaluating the starting submission ...")
        root = Rollout(step=0, parent=None, code=start)
        root.code_hash, root.candidate = ctx.run.write_candidate(start)
        root.judge(ctx.pool.judge(start), ctx.cfg.reward)
        root.state_id = archive.add_root(root).id
        history.append(root)
        ctx.echo(f"starting submission: {root.status}, {fmt_us(root.runtime_us)}")
    if ctx.cfg.empty_root or start is None:
        archive.add_empty_root()
    archive.ensure_roots(ctx.cfg.groups)
    best = archive.best()
    with no_interrupt():  # the first checkpoint and its views whole, as every step's (loop.commit)
        ctx.run.commit_step(0, archive.to_dict(), [r.record() for r in history], None, summary(ctx, 0),
                            best_code=best.code if best else None)  # fmt: skip
    return archive, 0


def _model_dir(cfg: DiscoverConfig) -> Path | None:
    """The local model folder; None where no weights are needed (the openai policy names a
    remote model; a frozen scripted run loads none). A missing model is an error before anything
    is written."""
    from kerneldisc.policy import resolve_model

    if cfg.policy == "vllm":
        from kerneldisc.policy.vllm import require_vllm

        require_vllm()
    if cfg.policy in ("hf", "vllm") or cfg.train:
        return resolve_model(cfg.model)
    return None


def _learner(cfg: DiscoverConfig, ckpt: Checkpoint | None, roles: GpuRoles | None, model_dir: Path | None):
    """The policy and the trainer, from the latest checkpoint's adapter and sampler state."""
    from kerneldisc.policy import make_policy

    sample_device = f"cuda:{roles.sample[0]}" if roles else "cpu"
    train_device = f"cuda:{roles.train[0]}" if roles else "cpu"
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
    policy = make_policy(
        cfg.policy, model=model_dir or cfg.model, device=sample_device, seed=cfg.seed,
        temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, base_url=cfg.base_url,
        api_key_env=cfg.api_key_env, trainer=trainer, script=cfg.script,
    )  # fmt: skip
    if ckpt is not None and ckpt.policy_state is not None:
        import torch

        policy.load_state_dict(torch.load(ckpt.policy_state, weights_only=False))
    if trainer is not None and trainer.step_count > 0:
        policy.load_adapter(trainer.save_adapter_for_sampling())
    return policy, trainer
