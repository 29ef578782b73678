"""Read what reports are built from: discovery run folders and bench output folders.

A run folder (written by `kerneldisc discover`) has `summary.json`, `history.jsonl` and
`steps.jsonl`; a bench folder (written by `kerneldisc bench`) has `suite.yml` and one folder
per entry under `entries/` with an `outcome.json`, holding verdicts or a run folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kerneldisc.atomic import read_lines
from kerneldisc.errors import ConfigError, KerneldiscError
from kerneldisc.run_folder import RunFolder
from kerneldisc.task import Task, load_task

# What an eval entry's generated or named candidate stands for in comparison tables.
ROLE_REFERENCE = "eager reference"
ROLE_COMPILE = "torch.compile"
ROLE_SUBMISSION = "starting submission"
ROLE_CANDIDATE = "candidate"


@dataclass
class RunData:
    path: Path
    summary: dict[str, Any]
    history: pd.DataFrame
    steps: pd.DataFrame
    task: Task | None
    task_error: str | None  # why the task could not be loaded, if it could not
    device_facts: dict[str, Any] = field(default_factory=dict)  # from the run's reference timing

    @property
    def label(self) -> str:
        """The run folder's name, or its bench entry's name for `<bench>/entries/<name>/run`."""
        if self.path.name == "run" and self.path.parent.parent.name == "entries":
            return self.path.parent.name
        return self.path.name

    @property
    def device(self) -> str:
        return str(self.summary.get("device") or "unknown")

    @property
    def device_name(self) -> str:
        """The hardware's name (e.g. "NVIDIA H100 80GB HBM3"), which published baselines are
        matched against; the evaluator records it with the reference timing."""
        return str(self.device_facts.get("name") or self.summary.get("device_name") or self.device)


@dataclass
class EvalResult:
    """One verdict from a bench eval entry, with the role its candidate plays."""

    entry: str
    label: str  # as written in the suite: a path, "@reference", "@compile", "@submission"
    role: str
    verdict: dict[str, Any]
    task: Task | None

    @property
    def device(self) -> str:
        return str(self.verdict.get("device") or "unknown")

    @property
    def device_name(self) -> str:
        facts = self.verdict.get("device_facts") or {}
        return str(facts.get("name") or facts.get("device_name") or self.device)


@dataclass
class BenchData:
    path: Path
    name: str
    outcomes: list[dict[str, Any]]
    evals: list[EvalResult] = field(default_factory=list)
    runs: list[RunData] = field(default_factory=list)


def load_source(path: Path) -> RunData | BenchData:
    path = Path(path)
    if (path / "config.yml").is_file() and (path / "checkpoints").is_dir():
        RunFolder.open(path)  # a run stopped while publishing its last step gets its views back
    if (path / "summary.json").is_file():
        return load_run(path)
    if (path / "suite.yml").is_file():
        return load_bench(path)
    raise ConfigError(
        f"{path}: neither a discovery run folder (no summary.json) nor a bench folder (no suite.yml)"
    )


def load_run(path: Path) -> RunData:
    summary = _read_json(path / "summary.json")
    task, error = _task_of(summary.get("task_path") or summary.get("task"))
    reference = _read_json(path / "reference.json") if (path / "reference.json").is_file() else {}
    return RunData(
        path=path,
        summary=summary,
        history=pd.DataFrame(read_lines(path / "history.jsonl")),
        steps=pd.DataFrame(read_lines(path / "steps.jsonl")),
        task=task,
        task_error=error,
        device_facts=reference.get("device_facts") or {},
    )


def load_bench(path: Path) -> BenchData:
    try:
        suite = yaml.safe_load((path / "suite.yml").read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path / 'suite.yml'}: not valid YAML: {str(exc).splitlines()[0]}") from None
    bench = BenchData(path=path, name=str(suite.get("name") or path.parent.name), outcomes=[])
    for outcome_file in sorted((path / "entries").glob("*/outcome.json")):
        outcome = _read_json(outcome_file)
        bench.outcomes.append(outcome)
        entry_dir = outcome_file.parent
        task, _ = _task_of(outcome.get("task_path"))
        for item in outcome.get("verdicts") or []:
            verdict = _read_json(entry_dir / item["verdict_file"])
            bench.evals.append(EvalResult(outcome["name"], item["label"], item["role"], verdict, task))
        if outcome.get("run") and (entry_dir / outcome["run"] / "summary.json").is_file():
            bench.runs.append(load_run(entry_dir / outcome["run"]))
    return bench


def _task_of(task_path: str | None) -> tuple[Task | None, str | None]:
    """Reports still render when a task folder moved away; they just lose its baselines."""
    if not task_path:
        return None, "no task path recorded"
    try:
        return load_task(task_path), None
    except KerneldiscError as exc:
        return None, str(exc)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data
