"""Whether a task's sizes can fit this machine, told before minutes are spent finding out.

A task's `bytes` expression counts what its kernel reads and writes once, about the memory its
inputs and output take. On the CPU the evaluator holds those in shared memory for the harness,
in its own copy, in the reference's answer and in the output it reads back, so a benchmark
whose inputs and output take more than a fraction of the available memory cannot run here; and
a candidate whose memory limit is under what its inputs and output take alone cannot pass. A task
without a `bytes` expression (a KernelBench file) is not checked; its failures name it instead.
"""

from __future__ import annotations

from typing import Any

from kerneldisc.errors import ConfigError, TaskError
from kerneldisc.task_model import Task, eval_spec_expr, spec_label

# Copies of the inputs and the output the evaluator holds at once on the CPU (see above).
COPIES = 4


def available_mb() -> float | None:
    """MemAvailable from /proc/meminfo, in MB (None where it cannot be read)."""
    return _meminfo("MemAvailable:")


def total_mb() -> float | None:
    """MemTotal from /proc/meminfo, in MB."""
    return _meminfo("MemTotal:")


def _meminfo(field: str) -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# The trusted processes' own caps on the CPU, as fractions of the machine's memory: the judge
# (which makes the inputs and runs the reference to check outputs) and the reference's harness
# are never held to the candidate's limit, yet cannot take the whole machine down either.
JUDGE_FRACTION = 0.85
REFERENCE_FRACTION = 0.75


def trusted_cap_mb(fraction: float, at_least: int | None = None) -> int | None:
    total = total_mb()
    if total is None:
        return at_least
    return max(int(total * fraction), at_least or 0)


def largest_spec(task: Task, device: str) -> tuple[dict[str, Any], float] | None:
    """The test or benchmark whose inputs and output take the most memory, and that many MB."""
    if not task.bytes:
        return None
    tests, benchmarks = task.specs_for(device)
    sized = []
    for spec in [*tests, *benchmarks]:
        try:
            sized.append((spec, eval_spec_expr(task.bytes, spec) / 1e6))
        except Exception:  # noqa: BLE001 - an expression that does not evaluate: not ours to judge here
            continue
    return max(sized, key=lambda item: item[1]) if sized else None


def default_limit_mb(task: Task, device: str, base_mb: int) -> int:
    """The candidate's memory limit when none is set: the evaluator's default, raised for tasks
    whose inputs and output are large (torch itself, the inputs mapped, the output, room for as
    much again in temporaries), so that a correct kernel is not refused for the task's size."""
    found = largest_spec(task, device) if device == "cpu" else None
    return base_mb if found is None else limit_for(found[1], base_mb)


def limit_for(need_mb: float, base_mb: int) -> int:
    return max(base_mb, int(2048 + 4 * need_mb))


def check_fits(task: Task, device: str, memory_limit_mb: int | None) -> None:
    """Raise a TaskError (the machine) or ConfigError (the candidate's limit) with the size needed
    and the options, when the task's largest sizes cannot run here."""
    if device != "cpu":
        return
    found = largest_spec(task, device)
    if found is None:
        return
    spec, need_mb = found
    check_need(
        f"task {task.name}: {{{spec_label(spec)}}}", need_mb, memory_limit_mb, "its `bytes` expression"
    )


def check_need(where: str, need_mb: float, memory_limit_mb: int | None, how: str) -> None:
    """The check itself, for a need found one way or another (`how` says which)."""
    where = f"{where} takes about {need_mb:,.0f} MB for its inputs and output ({how})"
    options = (
        "Run it on a GPU machine, or give the task smaller CPU sizes (cpu_tests / cpu_benchmarks in "
        "task.yml, or a KernelBench file's own sizes as file.py?NAME=VALUE, see docs/tasks.md)"
    )
    free = available_mb()
    if free is not None and need_mb * COPIES > free:
        raise TaskError(
            f"{where}; the evaluator holds about {COPIES} copies on the CPU, {need_mb * COPIES:,.0f} MB, "
            f"and this machine has {free:,.0f} MB available. {options}."
        )
    if memory_limit_mb is not None and need_mb > memory_limit_mb:
        raise ConfigError(
            f"{where}, more than the candidate's memory limit of {memory_limit_mb} MB: raise it "
            f"(`kerneldisc eval --memory-limit MB`, or eval_memory_mb in a discover config). {options}."
        )
