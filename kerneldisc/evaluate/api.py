"""The evaluator's entry points for the rest of the program: `evaluate` and `measure_reference`.

This side never imports torch and never runs candidate code: it checks the candidate's
syntax, handles CUDA C++ candidates on GPU-less machines with nvcc, and otherwise starts the
trusted judge process (which starts the candidate's sandboxed child) and turns its answer
into a `Verdict`. Every call works in its own private temporary folder and child processes,
so several threads may evaluate at once.
"""

from __future__ import annotations

import ast
import hashlib
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from kerneldisc.errors import CandidateError, ConfigError, TaskError
from kerneldisc.evaluate.config import EvalConfig, guess_device
from kerneldisc.evaluate.cuda_compile import extract_cuda_sources, nvcc_check, uses_cuda_extension
from kerneldisc.evaluate.forkserver import ForkServerError, fork_server
from kerneldisc.evaluate.integrity import PACKAGE_ROOT, package_guard, purge_bytecode_since
from kerneldisc.evaluate.problem import task_to_dict
from kerneldisc.evaluate.protocol import REFERENCE_BUDGET_S
from kerneldisc.evaluate.sandbox import ChildDied, ChildTimeout
from kerneldisc.evaluate.signing import new_key, open_signed
from kerneldisc.evaluate.sizes import check_fits, default_limit_mb
from kerneldisc.evaluate.verdict import ReferenceTiming, TestResult, Verdict, timing_method
from kerneldisc.task import Task

_JUDGE_SLACK_S = 120.0


def evaluate(
    task: Task, candidate: Path | str, cfg: EvalConfig | None = None, reference: ReferenceTiming | None = None
) -> Verdict:
    """Judge one candidate (a .py file as a Path, or its code as a str) on `task`.

    Never raises for anything the candidate does; raises KerneldiscError subclasses for caller
    errors (missing candidate file, bad device, a task whose reference cannot run).
    """
    cfg = cfg or EvalConfig()
    started = time.monotonic()
    source, label = _read_candidate(candidate)
    device = guess_device(cfg.device)
    early = _static_verdict(task, source, label, device)
    if early is not None:
        early.elapsed_s = time.monotonic() - started
        return early
    cfg = _sized_for(task, device, cfg)
    check_fits(task, device, cfg.resolved(device)["memory_limit_mb"])
    if reference is not None and (reference.device == "cpu") != (device == "cpu"):
        raise ConfigError(
            f"the reference was timed on {reference.device} ({reference.device_facts.get('name')}) but this "
            f"evaluation runs on {device}; measure the reference on the same kind of device"
        )
    if reference is not None and reference.method != timing_method(device):
        raise ConfigError(
            f"the reference of task {task.name} was timed as {reference.method or 'before timing methods were recorded'}, "
            f"but this evaluation times calls as {timing_method(device)}; measure the reference again"
        )
    guard = package_guard()
    guard.check_before()
    since = time.time()
    try:
        with tempfile.TemporaryDirectory(prefix="kerneldisc-eval-") as work:
            answer = _run_judge(task, cfg, device, work, candidate=source, reference=reference)
    finally:
        # Bytecode caches written while the candidate lived may be its own: they go, so that no
        # later process (this command started anew) runs them (the evaluator's children never do).
        purge_bytecode_since(since, PACKAGE_ROOT, _task_dirs(task))
    if guard.changed():
        return _failed(
            {"task": task.name, "candidate": label, "device": device},
            task,
            "rejected",
            "kerneldisc's own source files changed on disk while this candidate ran (no reward)",
        )
    try:
        verdict = Verdict.from_dict({**answer["verdict"], "candidate": label})
    except (KeyError, TypeError, ValueError) as exc:  # signed, so ours; never a crash of the caller
        return _failed(
            {"task": task.name, "candidate": label, "device": device},
            task,
            "crash",
            f"the evaluator produced a verdict it cannot read ({type(exc).__name__}: {exc}); no reward",
        )
    if reference is not None and not _comparable(reference, verdict):
        raise ConfigError(
            f"the reference was timed on {reference.device} ({reference.device_facts.get('name')}) but this "
            f"evaluation ran on {verdict.device} ({verdict.device_facts.get('name')}); measure the reference "
            "on the same kind of device"
        )
    verdict.interpreted = verdict.device == "cpu" and (verdict.interpreted or imports_triton(source))
    verdict.elapsed_s = time.monotonic() - started
    return verdict


def imports_triton(source: str) -> bool:
    """Whether a candidate's code imports Triton (read statically; nothing is run)."""
    from kerneldisc.evaluate.gpu_compile import imports_triton as reads_triton

    return reads_triton(source)


def measure_reference(task: Task, cfg: EvalConfig | None = None) -> ReferenceTiming:
    """Time the task's reference once, with the candidate protocol, in its own trusted child."""
    cfg = cfg or EvalConfig()
    device = guess_device(cfg.device)
    cfg = _sized_for(task, device, cfg)
    check_fits(task, device, cfg.resolved(device)["memory_limit_mb"])
    package_guard().check_before()
    with tempfile.TemporaryDirectory(prefix="kerneldisc-ref-") as work:
        answer = _run_judge(task, cfg, device, work, candidate=None, reference=None)
    return ReferenceTiming.from_dict(answer["reference"])


def _sized_for(task: Task, device: str, cfg: EvalConfig) -> EvalConfig:
    """The candidate's default memory limit raised for a task with large inputs (sizes.py)."""
    if cfg.memory_limit_mb is not None or device != "cpu":
        return cfg
    default = cfg.resolved(device)["memory_limit_mb"]
    limit = default_limit_mb(task, device, default)
    return cfg if limit == default else replace(cfg, memory_limit_mb=limit)


def _comparable(reference: ReferenceTiming, verdict: Verdict) -> bool:
    """CPU and GPU numbers never mix; GPUs of the same model (any index) do."""
    if (reference.device == "cpu") != (verdict.device == "cpu"):
        return False
    names = reference.device_facts.get("name"), verdict.device_facts.get("name")
    return None in names or names[0] == names[1]


def _read_candidate(candidate: Path | str) -> tuple[str, str]:
    if isinstance(candidate, Path):
        if not candidate.is_file():
            raise CandidateError(f"candidate file {candidate} does not exist or is not a file")
        try:
            return candidate.read_text(), str(candidate)
        except UnicodeDecodeError:
            raise CandidateError(f"candidate file {candidate} is not UTF-8 text") from None
        except OSError as exc:
            raise CandidateError(f"candidate file {candidate}: cannot read ({exc.strerror})") from None
    if isinstance(candidate, str):
        return candidate, "<code " + hashlib.sha256(candidate.encode()).hexdigest()[:12] + ">"
    raise CandidateError(
        f"candidate must be a Path to a .py file or code text, got {type(candidate).__name__}"
    )


def _static_verdict(task: Task, source: str, label: str, device: str) -> Verdict | None:
    """Verdicts reachable without running anything: syntax errors, CUDA C++ with no GPU here."""
    base = {"task": task.name, "candidate": label, "device": device}
    try:
        ast.parse(source)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        return _failed(base, task, "compile_error", f"SyntaxError at {where}: {exc.msg}")
    if device != "cpu" or not uses_cuda_extension(source):
        return None
    sources = extract_cuda_sources(source)
    if sources is None:
        return _failed(
            base, task, "rejected",
            "uses a CUDA C++ extension whose cuda_sources are not string literals; it cannot be compiled "
            "or run without a CUDA GPU (no reward)",
        )  # fmt: skip
    result = nvcc_check(sources) if sources else None
    if result is not None and not result.ok:
        return _failed(base, task, "compile_error", result.message)
    checked = (
        "compiled with nvcc for sm_90" if result is not None else "not compiled (no nvcc on this machine)"
    )
    verdict = _failed(
        base, task, "rejected", f"CUDA C++ extension {checked}; it needs a CUDA GPU to run (no reward)"
    )
    verdict.gpu_compile = result.kernels if result is not None else []
    return verdict


def _failed(base: dict[str, Any], task: Task, status: str, message: str) -> Verdict:
    from kerneldisc.evaluate.device import cpu_facts

    tests = [TestResult(spec, False, "not run") for spec in task.specs_for(base["device"])[0]]
    facts = cpu_facts() if base["device"] == "cpu" else {"device": base["device"]}
    return Verdict(**base, status=status, message=message, tests=tests, device_facts=facts)


def _task_dirs(task: Task) -> list[Path]:
    return [p.parent if p.is_file() else p for p in (task.path, *task.mapped_modules.values())]


def _encodable(obj: Any) -> Any:
    """Every string made encodable as UTF-8: a candidate's exception text may carry lone
    surrogates (JSON's "\\ud800"), which would break printing the verdict or writing a report."""
    if isinstance(obj, str):
        return obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, list):
        return [_encodable(v) for v in obj]
    if isinstance(obj, dict):
        return {_encodable(k): _encodable(v) for k, v in obj.items()}
    return obj


def _run_judge(
    task: Task,
    cfg: EvalConfig,
    device: str,
    work: str,
    candidate: str | None,
    reference: ReferenceTiming | None,
) -> dict[str, Any]:
    request = {
        "requested": cfg.device,
        "device": device,
        "config": asdict(cfg),
        "settings_cpu": cfg.resolved("cpu"),
        "settings_gpu": cfg.resolved(device if device != "cpu" else "cuda:0"),
        "task": task_to_dict(task),
        "candidate": candidate,
        "work_dir": work,
        "reference": reference.to_dict() if reference else None,
        "env": dict(os.environ),
    }
    key = new_key()
    # The candidate's time (measured twice at most) and, when the reference is timed here, the
    # reference's own budget (twice: a large speedup is re-measured on both sides).
    reference_s = 0.0 if reference is not None else 2 * max(cfg.timeout_s, REFERENCE_BUDGET_S)
    deadline = time.monotonic() + 2 * cfg.timeout_s + reference_s + _JUDGE_SLACK_S
    try:
        judge = fork_server().spawn()
    except ForkServerError as exc:
        raise TaskError(f"cannot evaluate on task {task.name}: {exc}") from None
    try:
        # The key goes after the request: the judge reads it only once the candidate's process
        # has been forked, so that process never holds a copy of it.
        judge.send(request)
        judge.send({"key": key})
        envelope = judge.recv(deadline)
    except (ChildDied, ChildTimeout) as exc:
        tail = " | ".join(judge.stderr.text().strip().splitlines()[-5:])
        what = f"the evaluator's judge process for task {task.name} {judge.exit_description()}"
        if isinstance(exc, ChildTimeout):
            what += (
                f" (its deadline passed: the candidate's limit is {cfg.timeout_s:.0f} s, and making the "
                "inputs, checking outputs and timing the reference took the rest; the task's sizes may be "
                "too large for this machine)"
            )
        tail = f": {tail}" if tail else ""
        if candidate is None:
            raise TaskError(what + tail) from None
        # The candidate cannot signal its judge (seccomp), but whatever ended it earns nothing.
        return {"verdict": {"task": task.name, "device": device, "status": "crash",
                            "message": f"{what} before answering{tail}"}}  # fmt: skip
    finally:
        judge.close()
    answer = _encodable(open_signed(envelope, key))
    if answer is None:
        # Only a same-user process other than the judge, i.e. the candidate, writes unsigned lines.
        message = "an answer not signed by the judge reached the evaluator (forged by the candidate?)"
        if candidate is None:
            raise TaskError(f"timing task {task.name}'s reference: {message}")
        return {"verdict": {"task": task.name, "device": device, "status": "rejected", "message": message}}
    if "caller_error" in answer:
        raise ConfigError(answer["caller_error"])
    if "task_error" in answer:
        detail = " | ".join(line.strip() for line in str(answer["task_error"]).splitlines() if line.strip())
        raise TaskError(f"task {task.name} ({task.path}): {detail}")
    return answer
