"""Benchmark suites: a YAML file naming tasks and what to do with each, run entry by entry.

An entry either evaluates candidate files (`eval`) or runs a discovery (`discover`). Entries
run in order — one per GPU at a time when several GPUs are visible — and a failing entry is
recorded and passed over, never the end of the suite. Each entry writes its folder under
`<out>/entries/<name>/` with an `outcome.json` (status done|failed|running); `--resume`
skips entries whose outcome is done. The schema is documented in docs/reports.md.

With `--ray`, entries run side by side in this process (one thread each, as many as the cluster
has evaluators) and every evaluation goes to the cluster's evaluators (ray_evaluators.py), whose
verdicts say which node and device judged them; the output folder stays on this machine.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from kerneldisc.atomic import write_json
from kerneldisc.config import FIELDS
from kerneldisc.devices import parse_device, resolve_device, visible_gpus
from kerneldisc.errors import ConfigError, KerneldiscError
from kerneldisc.task import REFERENCE_DIR, Task, load_task
from kerneldisc.yaml_file import read_yaml_mapping

log = logging.getLogger(__name__)

ACTIONS = ("eval", "discover")
REPO_ROOT = REFERENCE_DIR.parent
# What an `eval` item may name besides a file or folder of candidates.
GENERATED = {"@reference": "eager reference", "@compile": "torch.compile"}
SUBMISSION = "@submission"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# An entry run in a process of its own (several GPUs, or a timeout_s) ends by this at the latest.
CHILD_DEADLINE_S = 48 * 3600.0
STOP_GRACE_S = 60.0


@dataclass
class Entry:
    name: str
    task: str  # reference task name, or an absolute path to a task folder / KernelBench file
    action: str  # eval | discover
    candidates: list[str] = field(default_factory=list)  # eval: absolute paths or @-labels
    settings: dict[str, Any] = field(default_factory=dict)  # discover: DiscoverConfig fields
    timeout_s: float | None = None  # set: the entry runs in its own process, stopped at the deadline

    def to_dict(self) -> dict[str, Any]:
        action = {"eval": self.candidates} if self.action == "eval" else {"discover": self.settings}
        deadline = {} if self.timeout_s is None else {"timeout_s": self.timeout_s}
        return {"name": self.name, "task": self.task, **action, **deadline}


@dataclass
class Suite:
    name: str
    device: str
    entries: list[Entry]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The resolved suite: variables substituted, paths absolute, defaults merged."""
        return {
            "name": self.name,
            "description": self.description,
            "device": self.device,
            "entries": [e.to_dict() for e in self.entries],
        }


# --- loading --------------------------------------------------------------------------------


def load_suite(path: str | Path, overrides: dict[str, str] | None = None) -> Suite:
    """Read a suite file. `${var}` placeholders take, in order: `overrides` (the CLI's
    `--set var=value`), the environment variable VAR (upper case), the suite's `vars:`."""
    path = Path(path)
    raw = read_yaml_mapping(path, "suite file", "a mapping with 'name' and 'entries'")
    known = ("name", "description", "device", "timeout_s", "vars", "defaults", "entries")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})")
    variables = _variables(raw.get("vars") or {}, overrides or {}, path)
    raw = _substitute(raw, variables, path)
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping of discover settings")
    entries_raw = raw.get("entries")
    if not isinstance(entries_raw, list) or not entries_raw:
        raise ConfigError(f"{path}: 'entries' must be a non-empty list (each: task plus eval or discover)")
    timeout_s = _timeout(raw.get("timeout_s"), f"{path}: timeout_s")
    entries = [_entry(e, i, defaults, timeout_s, path) for i, e in enumerate(entries_raw)]
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: entry names must be unique; give these a 'name': {', '.join(dupes)}")
    device = parse_device(str(raw.get("device") or "auto"), f"{path}: device")
    return Suite(
        name=str(raw.get("name") or path.stem),
        device=device,
        entries=entries,
        description=str(raw.get("description") or "").strip(),
    )


def _variables(
    declared: dict, overrides: dict[str, str], path: Path
) -> dict[str, tuple[str | None, str | None]]:
    """Each var is a default value, or `{default: ..., env: NAME}` to also read $NAME."""
    if not isinstance(declared, dict):
        raise ConfigError(f"{path}: 'vars' must be a mapping of name to default value")
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise ConfigError(f"{path}: --set {unknown[0]}: the suite declares no such variable (vars: {known})")
    values: dict[str, tuple[str | None, str | None]] = {}  # name -> (value, environment variable)
    for name, spec in declared.items():
        default, env = (spec.get("default"), spec.get("env")) if isinstance(spec, dict) else (spec, None)
        value = overrides.get(name) or (os.environ.get(str(env)) if env else None)
        values[str(name)] = (value if value else (None if default is None else str(default)), env)
    return values


def _substitute(value: Any, variables: dict[str, tuple[str | None, str | None]], path: Path) -> Any:
    if isinstance(value, dict):
        return {k: (v if k == "vars" else _substitute(v, variables, path)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, path) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise ConfigError(f"{path}: ${{{name}}} is used but not declared under 'vars'")
        value, env = variables[name]
        if value is None:
            hint = f" or set the environment variable {env}" if env else ""
            raise ConfigError(f"{path}: variable '{name}' has no value: pass --set {name}=VALUE{hint}")
        return value

    return _VAR.sub(one, value)


def _timeout(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{where} must be a positive number of seconds, got {value!r}")
    return float(value)


def _entry(raw: Any, index: int, defaults: dict, timeout_s: float | None, suite_path: Path) -> Entry:
    where = f"{suite_path}: entries[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: expected a mapping with 'task' (or 'kernelbench') and 'eval' or 'discover'"
        )
    unknown = sorted(set(raw) - {"name", "task", "kernelbench", "timeout_s", *ACTIONS})
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: name, task, kernelbench, eval, discover, timeout_s)"
        )
    if "timeout_s" in raw:
        timeout_s = _timeout(raw["timeout_s"], f"{where}: timeout_s")
    actions = [a for a in ACTIONS if a in raw]
    if len(actions) != 1:
        raise ConfigError(f"{where}: give exactly one of 'eval' (candidate files) or 'discover' (settings)")
    action = actions[0]
    if "kernelbench" in raw:
        task = str(kernelbench_problem(raw["kernelbench"], where)) + kernelbench_query(
            raw["kernelbench"], where
        )
    elif raw.get("task"):
        task = _task_ref(str(raw["task"]), suite_path)
    else:
        raise ConfigError(f"{where}: missing 'task' (a reference task name, folder or KernelBench file)")
    bare = task.partition("?")[0]
    name = str(raw.get("name") or f"{Path(bare).stem if '/' in bare else bare}-{action}")
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise ConfigError(
            f"{where}: name {name!r} must use only letters, digits and . _ + - (it names a folder)"
        )
    if action == "eval":
        items = raw["eval"]
        items = [items] if isinstance(items, str) else items
        if not isinstance(items, list) or not items:
            raise ConfigError(
                f"{where}: 'eval' must list candidate files, folders, @submission, @reference or @compile"
            )
        candidates = [_candidate_ref(str(i), suite_path, where) for i in items]
        return Entry(name, task, action, candidates=candidates, timeout_s=timeout_s)
    settings = raw["discover"] or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{where}: 'discover' must be a mapping of discover settings (may be empty: {{}})")
    merged = {**defaults, **settings}
    unknown = sorted(set(merged) - FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown discover setting(s) {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})"
        )
    if {"task", "out"} & set(merged):
        raise ConfigError(
            f"{where}: 'task' and 'out' are set by the suite (the entry's task; entries/<name>/run)"
        )
    if merged.get("script"):
        merged["script"] = str(_resolve_path(str(merged["script"]), suite_path))
    return Entry(name, task, action, settings=merged, timeout_s=timeout_s)


def kernelbench_problem(spec: Any, where: str) -> Path:
    """`{root: ..., level: 1, problem: 19}` -> <root>/KernelBench/level1/19_*.py"""
    if not isinstance(spec, dict) or not {"root", "level", "problem"} <= set(spec):
        raise ConfigError(
            f"{where}: 'kernelbench' needs root, level and problem, e.g. {{root: ${{kernelbench_root}}, level: 1, problem: 19}}"
        )
    root = Path(str(spec["root"])).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"{where}: KernelBench checkout {root} not found (set kernelbench_root to the folder you cloned KernelBench into)"
        )
    level_dir = root / "KernelBench" / f"level{spec['level']}"
    if not level_dir.is_dir():
        level_dir = root / f"level{spec['level']}"  # a checkout's inner KernelBench/ folder given directly
    matches = sorted(level_dir.glob(f"{spec['problem']}_*.py"))
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(m.name for m in matches)
        raise ConfigError(
            f"{where}: expected one problem file {level_dir}/{spec['problem']}_*.py, found {found}"
        )
    return matches[0].resolve()


def kernelbench_query(spec: dict[str, Any], where: str) -> str:
    """A kernelbench entry's `precision` and `sizes` as the task's options (`?precision=bf16&dim=1024`)."""
    from urllib.parse import urlencode

    unknown = sorted(set(spec) - {"root", "level", "problem", "precision", "sizes"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown kernelbench key(s) {', '.join(unknown)} (known: root, level, problem, precision, sizes)"
        )
    sizes = spec.get("sizes") or {}
    if not isinstance(sizes, dict):
        raise ConfigError(
            f"{where}: kernelbench sizes must be a mapping of the file's size names, e.g. {{batch_size: 16}}"
        )
    pairs = ([("precision", str(spec["precision"]))] if spec.get("precision") else []) + [
        (str(k), str(v)) for k, v in sizes.items()
    ]
    return "?" + urlencode(pairs) if pairs else ""


def _task_ref(text: str, suite_path: Path) -> str:
    """A bare name stays a reference task name; anything else is a path made absolute (a
    KernelBench file's options after `?` kept as they are)."""
    path, mark, query = text.partition("?")
    if "/" not in path and not path.endswith(".py"):
        return text
    return str(_resolve_path(path, suite_path)) + mark + query


def _candidate_ref(text: str, suite_path: Path, where: str) -> str:
    if text.startswith("@"):
        if text not in GENERATED and text != SUBMISSION:
            raise ConfigError(
                f"{where}: unknown eval item {text!r} (known: @submission, @reference, @compile)"
            )
        return text
    return str(_resolve_path(text, suite_path))


def _resolve_path(text: str, suite_path: Path) -> Path:
    """Relative paths are tried against the suite file's folder, then the repository."""
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    for base in (suite_path.resolve().parent, REPO_ROOT):
        if (base / path).exists():
            return (base / path).resolve()
    return (suite_path.resolve().parent / path).resolve()


# --- running --------------------------------------------------------------------------------


@dataclass
class SuiteResult:
    out_dir: Path
    outcomes: list[dict[str, Any]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [o for o in self.outcomes if o.get("status") != "done"]


def default_out_dir(suite: Suite) -> Path:
    return Path("bench_runs") / suite.name / datetime.now().strftime("%Y%m%d-%H%M%S")


def run_suite(
    suite: Suite, out_dir: Path, resume: bool = False, gpus: list[str] | None = None, echo=print,
    ray: str | None = None,
) -> SuiteResult:  # fmt: skip
    """Run every entry not already done; `gpus` (default: those visible) run entries in
    parallel, one per GPU, each in its own process with CUDA_VISIBLE_DEVICES set; `ray` (an
    address) spreads their evaluations over a Ray cluster instead."""
    out_dir = Path(out_dir)
    if not resume and out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(
            f"{out_dir} exists and is not empty; pass --resume to continue it or choose another --out"
        )
    if resume and not (out_dir / "suite.yml").is_file():
        raise ConfigError(f"--resume: {out_dir} holds no suite.yml (not a bench output folder)")
    device = resolve_device(suite.device)
    cluster, kind = None, device
    if ray is not None:  # an unreachable cluster is an error before the output folder exists
        from kerneldisc.ray_evaluators import join

        cluster = join(ray, device, suite.device, 0, echo)
        kind = cluster.kind
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "suite.yml").write_text(yaml.safe_dump(suite.to_dict(), sort_keys=False))
    if cluster is None or (kind == "cpu") == (device == "cpu"):  # this machine is like the evaluators'
        _record_ceilings(out_dir, device)
    todo = []
    for entry in suite.entries:
        outcome = read_outcome(out_dir, entry.name)
        if resume and outcome is not None and outcome.get("status") == "done":
            echo(f"{entry.name}: done earlier, skipped")
            continue
        todo.append(entry)
    if gpus is None:  # "cuda" spreads entries over every visible GPU; "cuda:N" pins them to one
        gpus = visible_gpus() if device == "cuda" and cluster is None else []
    if cluster is not None:
        _run_on_ray(todo, out_dir, suite.device, kind, cluster, ray, echo)
    elif len(gpus) > 1:
        _run_parallel(todo, out_dir, device, gpus, echo)
    else:
        for entry in todo:
            if entry.timeout_s is None:
                outcome = run_entry(entry, out_dir, device, echo)
            else:  # only a process of its own can be stopped at a deadline
                echo(
                    f"{entry.name}: {entry.action} {entry.task} on {device} (at most {entry.timeout_s:g} s) ..."
                )
                outcome = _run_in_child(entry, out_dir, device, gpus[0] if gpus else None)
            echo(_outcome_line(outcome))
    outcomes = [read_outcome(out_dir, e.name) or {"name": e.name, "status": "failed"} for e in suite.entries]
    return SuiteResult(out_dir, outcomes)


def run_entry(
    entry: Entry, out_dir: Path, device: str, echo=print, cluster=None, ray: str | None = None
) -> dict[str, Any]:
    """Run one entry in this process; whatever goes wrong is written down as its outcome.
    `cluster` (RayEvaluators) and `ray` (its address) send its evaluations to a Ray cluster."""
    entry_dir = out_dir / "entries" / entry.name
    entry_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    outcome: dict[str, Any] = {
        "name": entry.name, "task": entry.task, "action": entry.action, "device": device,
        "status": "running", "error": None, "started_at": _now(),
    }  # fmt: skip
    write_outcome(entry_dir, outcome)
    echo(f"{entry.name}: {entry.action} {entry.task} on {device} ...")
    try:
        task = load_task(entry.task)
        outcome["task"] = task.name
        outcome["task_path"] = str(task.path)
        if entry.action == "eval":
            errors = _run_eval(entry, task, entry_dir, device, outcome, cluster)
        else:
            errors = _run_discover(entry, task, entry_dir, device, outcome, echo, ray)
        outcome["status"] = "failed" if errors else "done"
        outcome["error"] = "; ".join(errors) or None
    except KeyboardInterrupt:  # Ctrl-C stops the suite; --resume runs this entry again
        outcome.update(status="failed", error="interrupted", finished_at=_now())
        write_outcome(entry_dir, outcome)
        raise
    except KerneldiscError as exc:
        outcome.update(status="failed", error=str(exc))
    except Exception as exc:  # an entry's crash is its own outcome, never the suite's end
        log.debug("entry %s crashed", entry.name, exc_info=True)
        outcome.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        (entry_dir / "traceback.txt").write_text(traceback.format_exc())
    outcome["finished_at"] = _now()
    outcome["seconds"] = round(time.time() - started, 2)
    write_outcome(entry_dir, outcome)
    return outcome


def _run_eval(
    entry: Entry, task: Task, entry_dir: Path, device: str, outcome: dict, cluster=None
) -> list[str]:
    """Evaluate every named candidate against one reference timing, so all numbers of the
    entry come from the same run and protocol. On a Ray cluster the candidates are judged side by
    side, each against the reference of the device group that judged it (references.json)."""
    from kerneldisc.evaluate import EvalConfig, evaluate, measure_reference

    errors: list[str] = []
    candidates = list(_expand_candidates(entry, task, entry_dir, errors))
    if not candidates:
        return errors or ["no candidates to evaluate"]
    cfg = EvalConfig(device=device)
    if cluster is not None:
        cfg = EvalConfig(device="cuda:0" if cluster.kind == "cuda" else "cpu")
        verdicts = _judge_on_ray(
            task, [path.read_text() for _, _, path in candidates], cfg, cluster, entry_dir
        )
    else:
        reference = measure_reference(task, cfg)
        write_json(entry_dir / "reference.json", reference.to_dict())
        verdicts = (evaluate(task, path.read_text(), cfg, reference=reference) for _, _, path in candidates)
    (entry_dir / "verdicts").mkdir(exist_ok=True)
    records: list[dict[str, Any]] = []
    for (label, role, path), judged in zip(candidates, verdicts, strict=True):
        verdict = judged.to_dict()
        verdict_file = f"verdicts/{_slug(label, [r['verdict_file'] for r in records])}.json"
        write_json(entry_dir / verdict_file, verdict)
        records.append(
            {
                "label": label,
                "role": role,
                "candidate": str(path),
                "verdict_file": verdict_file,
                "status": verdict.get("status"),
                "runtime_us": verdict.get("runtime_us"),
                "speedup": verdict.get("speedup"),
            }  # fmt: skip
        )
        outcome["verdicts"] = records
        write_outcome(entry_dir, outcome)
    outcome["verdicts"] = records
    return errors


def _expand_candidates(entry: Entry, task: Task, entry_dir: Path, errors: list[str]):
    """(label, role, file) for each eval item; a missing file is an error of the entry, the
    other items still run."""
    from kerneldisc.report.sources import ROLE_CANDIDATE, ROLE_SUBMISSION

    for item in entry.candidates:
        if item in GENERATED:
            yield item, GENERATED[item], write_generated_candidate(task, item, entry_dir / "candidates")
        elif item == SUBMISSION:
            if task.submission_path is None:
                errors.append(f"@submission: task {task.name} has no submission.py")
                continue
            yield item, ROLE_SUBMISSION, task.submission_path
        elif Path(item).is_dir():
            files = sorted(Path(item).glob("*.py"))
            if not files:
                errors.append(f"{item}: folder holds no .py candidates")
            for f in files:
                yield str(f), ROLE_CANDIDATE, f
        elif Path(item).is_file():
            yield item, ROLE_CANDIDATE, Path(item)
        else:
            errors.append(f"{item}: candidate file not found")


def write_generated_candidate(task: Task, item: str, folder: Path) -> Path:
    """A candidate that runs the task's own reference, eagerly or through torch.compile, so the
    evaluator times it exactly like any other kernel."""
    folder.mkdir(parents=True, exist_ok=True)
    compiled = item == "@compile"
    if task.kind == "kernelbench":
        module, home = task.path, task.path.parent
        body = _KERNELBENCH_COMPILE if compiled else _KERNELBENCH_EAGER
    else:
        module, home = task.path / "reference.py", task.path
        body = _FOLDER_COMPILE if compiled else _FOLDER_EAGER
    what = "through torch.compile" if compiled else "eager"
    source = (
        f'"""{task.name}: the task\'s own reference, {what}, as a candidate (kerneldisc bench)."""\n\n'
        + _LOADER.format(folder=repr(str(home)), module=repr(str(module)))
        + body
    )
    path = folder / ("torch_compile_reference.py" if compiled else "eager_reference.py")
    path.write_text(source)
    return path


_LOADER = """import importlib.util
import sys

import torch

sys.path.insert(0, {folder})  # the task's sibling modules (utils.py, task.py) import by name
_spec = importlib.util.spec_from_file_location("_kerneldisc_bench_reference", {module})
_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_reference)
"""
# torch.compile's background compile workers and tqdm's monitor thread outlive the first call,
# which the evaluator rejects as work escaping the timer: compile in the calling thread.
_COMPILE_IN_THREAD = """
import torch._inductor.config as _inductor_config
import tqdm

_inductor_config.compile_threads = 1
tqdm.tqdm.monitor_interval = 0
"""
_FOLDER_EAGER = "\ncustom_kernel = _reference.ref_kernel\n"
_FOLDER_COMPILE = _COMPILE_IN_THREAD + "\ncustom_kernel = torch.compile(_reference.ref_kernel)\n"
_KERNELBENCH_EAGER = "\nModelNew = _reference.Model\n"
_KERNELBENCH_COMPILE = (
    _COMPILE_IN_THREAD
    + """

class ModelNew(_reference.Model):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._compiled_forward = torch.compile(super().forward)

    def forward(self, *args):
        return self._compiled_forward(*args)
"""
)


def _judge_on_ray(task: Task, codes: list[str], cfg, cluster, entry_dir: Path) -> list:
    """Every code judged on the cluster at once, each against its device group's reference (one
    timing per group and task, shared by the suite's entries); reference.json is the first
    group's, references.json every group's."""
    references: dict = {}
    _, first = cluster.reference(task, cfg, references)
    write_json(entry_dir / "reference.json", first.to_dict())
    with ThreadPoolExecutor(max_workers=max(1, min(len(codes), cluster.count))) as pool:
        verdicts = list(pool.map(lambda code: cluster.judge(task, code, cfg, references).verdict, codes))
    write_json(entry_dir / "references.json", {g: r.to_dict() for g, r in references.items()})
    return verdicts


def _run_on_ray(entries: list[Entry], out_dir: Path, device: str, kind: str, cluster, address: str,
                echo) -> None:  # fmt: skip
    """`eval` entries side by side, each in a thread of this process (their evaluations queue for
    the cluster's evaluators, so as many entries as evaluators keep them all busy); `discover`
    entries one after another on this thread meanwhile: each holds a sampler and a trainer on
    this machine and draws from process-wide generators, and a Ctrl-C reaches it as it would
    without Ray. `device` is the suite's setting (`auto` included), from which each discovery
    decides, as `discover --ray` does, where it samples and where the cluster evaluates; `kind`
    is where the eval entries' evaluations run."""
    pool = ThreadPoolExecutor(max_workers=max(1, cluster.count), thread_name_prefix="kerneldisc-bench")

    def one(entry: Entry) -> None:
        echo(_outcome_line(run_entry(entry, out_dir, kind, echo, cluster=cluster, ray=address)))

    try:
        futures = [pool.submit(one, e) for e in entries if e.action == "eval"]
        for entry in entries:
            if entry.action != "eval":
                echo(_outcome_line(run_entry(entry, out_dir, device, echo, cluster=cluster, ray=address)))
        for future in futures:
            future.result()
    finally:  # after a Ctrl-C, entries not begun are dropped (--resume runs them)
        pool.shutdown(wait=True, cancel_futures=True)


def _run_discover(entry: Entry, task: Task, entry_dir: Path, device: str, outcome: dict, echo,
                  ray: str | None = None) -> list[str]:  # fmt: skip
    from kerneldisc.config import make_config
    from kerneldisc.loop import config_for_resume, run_discovery
    from kerneldisc.run_context import Interrupted

    run_dir = entry_dir / "run"
    outcome["run"] = "run"
    write_outcome(entry_dir, outcome)
    settings = {**entry.settings, "task": str(task.path), "out": str(run_dir)}
    settings.setdefault("device", device)
    if ray is not None:
        settings["ray"] = ray
    log_file = entry_dir / "log.txt"

    def entry_echo(message: str) -> None:
        with open(log_file, "a") as fh:
            fh.write(message + "\n")
        echo(f"{entry.name}: {message}")

    try:
        if (run_dir / "config.yml").is_file():
            cfg = config_for_resume(run_dir, {"steps": settings.get("steps")})
            run_discovery(cfg, resume=run_dir, echo=entry_echo)
        else:
            run_discovery(make_config(settings), echo=entry_echo)
    except Interrupted:  # the loop turns Ctrl-C into this after checkpointing; stop the suite too
        raise KeyboardInterrupt from None
    summary = json.loads((run_dir / "summary.json").read_text())
    outcome["best_runtime_us"] = summary.get("best_runtime_us")
    outcome["best_speedup"] = summary.get("best_speedup")
    return []


def _run_parallel(entries: list[Entry], out_dir: Path, device: str, gpus: list[str], echo) -> None:
    free: queue.Queue[str] = queue.Queue()
    for g in gpus:
        free.put(g)

    def one(entry: Entry) -> None:
        gpu = free.get()
        try:
            outcome = _run_in_child(entry, out_dir, device, gpu)
            echo(_outcome_line(outcome) + f" [GPU {gpu}]")
        finally:
            free.put(gpu)

    with ThreadPoolExecutor(max_workers=len(gpus), thread_name_prefix="kerneldisc-bench") as pool:
        list(pool.map(one, entries))


def _run_in_child(entry: Entry, out_dir: Path, device: str, gpu: str | None) -> dict[str, Any]:
    """One entry in its own process (that sees only `gpu` when given), stopped at its deadline:
    the entry's `timeout_s`, else CHILD_DEADLINE_S, so a stuck entry never holds its GPU for
    good. If the child ends without writing its outcome, the parent writes a failed one."""
    entry_dir = out_dir / "entries" / entry.name
    entry_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {})}
    child_device = "cuda" if device.startswith("cuda") and gpu is not None else device
    cmd = [sys.executable, "-m", "kerneldisc.bench", str(out_dir), entry.name, child_device]
    deadline = entry.timeout_s or CHILD_DEADLINE_S
    with open(entry_dir / "child.log", "w") as log_fh:
        child = subprocess.Popen(
            cmd, env=env, stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            rc = child.wait(timeout=deadline)
            error = None
        except subprocess.TimeoutExpired:
            rc = _stop(child)
            error = f"stopped at its deadline of {deadline:g} s (timeout_s); --resume runs it again"
        except BaseException:  # Ctrl-C: the child's group got it too; never leave it running
            _stop(child)
            raise
    outcome = read_outcome(out_dir, entry.name)
    if error is None and outcome is not None and outcome.get("status") != "running":
        return outcome
    if error is None:
        tail = (entry_dir / "child.log").read_text()[-2000:].strip().splitlines()[-1:] or ["no output"]
        error = f"entry process exited with status {rc}: {tail[0]}"
    outcome = {
        **(outcome or {"name": entry.name, "task": entry.task, "action": entry.action}),
        "status": "failed", "error": error, "finished_at": _now(),
    }  # fmt: skip
    write_outcome(entry_dir, outcome)
    return outcome


def _stop(child: subprocess.Popen) -> int:
    """SIGINT first, as Ctrl-C would (a discovery finishes publishing its last step), then
    SIGKILL for the whole process group after a grace period."""
    for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        try:
            return child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return child.wait()


# --- outcomes -------------------------------------------------------------------------------


def write_outcome(entry_dir: Path, outcome: dict[str, Any]) -> None:
    write_json(entry_dir / "outcome.json", outcome)


def read_outcome(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = Path(out_dir) / "entries" / name / "outcome.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # written atomically, so only a foreign edit gets here: run it again


def _record_ceilings(out_dir: Path, device: str) -> None:
    """Measure (or take from the cache) this device's roofline ceilings once, and keep a copy
    with the results so a report built elsewhere still has them."""
    from dataclasses import asdict

    from kerneldisc.report.ceilings import get_ceilings

    try:
        ceilings = get_ceilings("cuda:0" if device.startswith("cuda") else "cpu")
    except Exception as exc:  # a report without speed-of-light figures beats no benchmark at all
        log.warning("could not measure device ceilings: %s", exc)
        return
    write_json(out_dir / "ceilings.json", {ceilings.device_name: asdict(ceilings)})


def _outcome_line(outcome: dict[str, Any]) -> str:
    status = outcome.get("status")
    detail = f": {outcome.get('error')}" if outcome.get("error") else ""
    return f"{outcome.get('name')}: {status} in {outcome.get('seconds', 0):.1f} s{detail}"


def _slug(label: str, taken: list[str]) -> str:
    base = (
        re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(label).stem if not label.startswith("@") else label[1:])
        or "candidate"
    )
    slug, n = base, 1
    while f"verdicts/{slug}.json" in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _child_main(argv: list[str]) -> int:
    """`python -m kerneldisc.bench OUT_DIR ENTRY DEVICE`: one entry of a suite being run in
    parallel, read from the resolved suite.yml the parent wrote."""
    out_dir, name, device = Path(argv[0]), argv[1], argv[2]
    suite = load_suite(out_dir / "suite.yml")
    entry = next(e for e in suite.entries if e.name == name)
    outcome = run_entry(entry, out_dir, device)
    return 0 if outcome["status"] == "done" else 1


if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
