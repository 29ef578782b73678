"""One adapter from any task kind to what the evaluator runs: inputs, reference, checker, entry.

Folder tasks (reference.py + task.yml) and KernelBench problems both become a `Problem`, so
the judge and the candidate's child never branch on the task kind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kerneldisc.task import Task, import_reference


class MissingEntry(Exception):
    """The candidate module lacks the function (or class) the task asks for."""


@dataclass
class Problem:
    generate_input: Callable[..., Any]
    ref_kernel: Callable[[Any], Any]
    check_implementation: Callable[[Any, Any], Any] | None
    candidate_entry: Callable[[types.ModuleType], Callable[[Any], Any]]

    def make_input(self, spec: dict[str, Any], seed: int, device: str) -> Any:
        """Inputs for one spec with the evaluator's seed in place of the task's, on `device`."""
        import torch

        kwargs = dict(spec)
        if "seed" in kwargs:
            kwargs["seed"] = seed
        params = inspect.signature(self.generate_input).parameters
        if "device" in params:
            kwargs["device"] = device
        torch.manual_seed(seed)
        return to_device(self.generate_input(**kwargs), device)


def load_problem(task: Task) -> Problem:
    if task.kind == "kernelbench":
        from kerneldisc.kernelbench import kernelbench_problem_parts

        generate_input, ref_kernel, wrap_candidate = kernelbench_problem_parts(task)
        return Problem(generate_input, ref_kernel, None, wrap_candidate)
    module = import_reference(task)
    return Problem(
        module.generate_input,
        module.ref_kernel,
        getattr(module, "check_implementation", None),
        _custom_kernel,
    )


def _custom_kernel(module: types.ModuleType) -> Callable[[Any], Any]:
    fn = getattr(module, "custom_kernel", None)
    if not callable(fn):
        raise MissingEntry("candidate defines no custom_kernel(data) function")
    return fn


def task_to_dict(task: Task) -> dict[str, Any]:
    """A Task as JSON-ready data, to hand to the judge inside its request (never through a file a
    candidate of another evaluation could rewrite, never as a pickle)."""
    values = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
    values["path"] = str(task.path)
    values["submission_path"] = str(task.submission_path) if task.submission_path else None
    values["mapped_modules"] = {k: str(v) for k, v in task.mapped_modules.items()}
    return json.loads(json.dumps(values, default=str))


def task_from_dict(values: dict[str, Any]) -> Task:
    known = {f.name for f in dataclasses.fields(Task)}
    values = {k: v for k, v in values.items() if k in known}
    values["path"] = Path(values["path"])
    if values.get("submission_path"):
        values["submission_path"] = Path(values["submission_path"])
    values["mapped_modules"] = {k: Path(v) for k, v in (values.get("mapped_modules") or {}).items()}
    return Task(**values)


def to_device(obj: Any, device: str) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj if obj.device == torch.device(device) else obj.to(device)
    if isinstance(obj, tuple):
        return tuple(to_device(v, device) for v in obj)
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def salted_seed(salt: str, spec: dict[str, Any], kind: str, index: int, rep: int) -> int:
    """A seed derived from the task's seed and a per-evaluation secret salt (31 bits)."""
    text = f"{salt}|{spec.get('seed', '')}|{kind}|{index}|{rep}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF
