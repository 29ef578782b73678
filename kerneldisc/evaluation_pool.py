"""The step's evaluations, in parallel: one worker per evaluation GPU, or one on the CPU (two
evaluations timing at once on a small CPU disturb each other's numbers). Identical code is
evaluated once. Whatever a candidate does, its rollout gets a verdict; an error of the run's own
(the task's reference failing, a setting the evaluator refuses) stops the run instead, at the last
finished step, rather than training on zeros.

`RayEvaluationPool` is the same step spread over a Ray cluster's evaluators (ray_evaluators.py);
this module never imports Ray itself. Both keep where the step's evaluation time went: waiting for
a free evaluator (`queue_wait_s`) and being evaluated (`evaluating_s`), summed over candidates."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from kerneldisc.errors import KerneldiscError
from kerneldisc.evaluate import EvalConfig, ReferenceTiming, Verdict
from kerneldisc.progress import bar
from kerneldisc.rollout import Rollout
from kerneldisc.task import Task

log = logging.getLogger(__name__)


class EvaluationPool:
    def __init__(self, task: Task, eval_cfg: EvalConfig, reference: ReferenceTiming, devices: list[str],
                 workers: int, reward_kind: str) -> None:  # fmt: skip
        self.task, self.reference, self.base_cfg, self.reward_kind = task, reference, eval_cfg, reward_kind
        workers = workers or (len(devices) if devices[0] != "cpu" else 1)
        self.workers = workers
        self.devices: queue.Queue[str] = queue.Queue()
        for i in range(workers):
            self.devices.put(devices[i % len(devices)])
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kerneldisc-eval")
        self.stats: dict[str, float] = {}

    def evaluators_alive(self) -> int:
        return self.workers

    def run(self, rollouts: list[Rollout]) -> None:
        """Judge every rollout the gate let through, and give it its reward."""
        self.stats = {"queue_wait_s": 0.0, "evaluating_s": 0.0}
        todo = [r for r in rollouts if r.pending]
        unique: dict[str, list[Rollout]] = {}
        for r in todo:
            unique.setdefault(str(r.code_hash), []).append(r)
        with bar(total=len(todo), desc="evaluating", unit="kernel") as progress:
            futures = {self.pool.submit(self.judge, group[0].code or ""): group for group in unique.values()}
            for future, group in futures.items():
                verdict = future.result()
                for r in group:
                    r.judge(verdict, self.reward_kind)
                progress.update(len(group))

    def _count(self, waited: float, busy: float) -> None:
        # += on floats from several threads: the GIL keeps each update whole, and the totals are
        # read only after every future is done.
        self.stats["queue_wait_s"] = self.stats.get("queue_wait_s", 0.0) + waited
        self.stats["evaluating_s"] = self.stats.get("evaluating_s", 0.0) + busy

    def judge(self, code: str) -> Verdict:
        from kerneldisc.evaluate import evaluate

        asked = time.monotonic()
        device = self.devices.get()
        started = time.monotonic()
        try:
            return evaluate(self.task, code, replace(self.base_cfg, device=device), reference=self.reference)
        except KerneldiscError:
            raise  # the run's own error (ConfigError, TaskError): every later verdict would be the same
        except Exception as exc:  # the evaluator's machinery failed once: a recorded failure
            log.exception("evaluator failed")
            return Verdict(task=self.task.name, candidate="<code>", device=device, status="crash",
                           message=f"evaluator failed: {exc!r}")  # fmt: skip
        finally:
            self._count(started - asked, time.monotonic() - started)
            self.devices.put(device)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class RayEvaluationPool(EvaluationPool):
    """A step's evaluations on a Ray cluster's evaluators (`RayEvaluators`): as many in flight as
    there are evaluators, each candidate's speedup against the reference of the device group
    that judged it. `references` is the run's own map of those (references.json), and
    `on_new_reference(group, reference)` keeps a group met for the first time, so a resumed run
    keeps every yardstick."""

    def __init__(self, task: Task, eval_cfg: EvalConfig, evaluators, reward_kind: str,
                 references: dict[str, ReferenceTiming],
                 on_new_reference: Callable[[str, ReferenceTiming], None] | None = None) -> None:  # fmt: skip
        self.task, self.base_cfg, self.reward_kind = task, eval_cfg, reward_kind
        self.evaluators, self.references, self.on_new_reference = evaluators, references, on_new_reference
        self.pool = ThreadPoolExecutor(max_workers=evaluators.count, thread_name_prefix="kerneldisc-ray")
        self.stats = {}

    def evaluators_alive(self) -> int:
        return self.evaluators.alive()

    def judge(self, code: str) -> Verdict:
        judged = self.evaluators.judge(self.task, code, self.base_cfg, self.references, self.on_new_reference)
        self._count(judged.queue_wait_s, judged.evaluating_s)
        return judged.verdict

    def close(self) -> None:
        # The evaluators outlive the run: a bench suite's next entry reuses them.
        self.pool.shutdown(wait=False, cancel_futures=True)
