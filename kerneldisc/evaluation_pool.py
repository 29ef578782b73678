"""The step's evaluations, in parallel: one worker per evaluation GPU, or one on the CPU (two
evaluations timing at once on a small CPU disturb each other's numbers). Identical code is
evaluated once. Whatever a candidate does, its rollout gets a verdict; an error of the run's own
(the task's reference failing, a setting the evaluator refuses) stops the run instead, at the last
finished step, rather than training on zeros."""

from __future__ import annotations

import logging
import queue
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
        self.devices: queue.Queue[str] = queue.Queue()
        for i in range(workers):
            self.devices.put(devices[i % len(devices)])
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kerneldisc-eval")

    def run(self, rollouts: list[Rollout]) -> None:
        """Judge every rollout the gate let through, and give it its reward."""
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

    def judge(self, code: str) -> Verdict:
        from kerneldisc.evaluate import evaluate

        device = self.devices.get()
        try:
            return evaluate(self.task, code, replace(self.base_cfg, device=device), reference=self.reference)
        except KerneldiscError:
            raise  # the run's own error (ConfigError, TaskError): every later verdict would be the same
        except Exception as exc:  # the evaluator's machinery failed once: a recorded failure
            log.exception("evaluator failed")
            return Verdict(task=self.task.name, candidate="<code>", device=device, status="crash",
                           message=f"evaluator failed: {exc!r}")  # fmt: skip
        finally:
            self.devices.put(device)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
