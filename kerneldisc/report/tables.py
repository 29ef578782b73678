"""Every table a report shows, as pandas DataFrames built from run and bench folders."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kerneldisc.evaluate.verdict import aggregate
from kerneldisc.report.ceilings import Ceilings
from kerneldisc.report.sources import (
    ROLE_COMPILE,
    ROLE_REFERENCE,
    ROLE_SUBMISSION,
    BenchData,
    EvalResult,
    RunData,
)
from kerneldisc.task import Task, eval_spec_expr

ROLE_BEST = "best found"
ROLE_HUMAN = "best human (published)"
ROLE_TTT = "TTT-Discover (published)"
ROLE_TTT_START = "TTT-Discover starting program (published)"
# task.yml baseline keys -> (role, the per-GPU key that may name the figure's source)
_PUBLISHED = {
    "best_human_us": (ROLE_HUMAN, "source"),
    "ttt_discover_us": (ROLE_TTT, "ttt_discover_source"),
    "ttt_discover_start_us": (ROLE_TTT_START, "ttt_discover_source"),
}


@dataclass
class Measurement:
    """One kernel's runtime for one task on one device, and where the number comes from."""

    task: str
    device: str  # "cpu" or "cuda"
    device_name: str
    role: str
    kernel: str
    runtime_us: float | None
    status: str
    source: str
    task_obj: Task | None = None
    verdict: dict | None = None  # per-benchmark runtimes, when the number is our own measurement


def _count(history: pd.DataFrame, where) -> int:
    return int(where(history).sum()) if len(history) else 0


def run_summary_table(run: RunData) -> pd.DataFrame:
    s = run.summary
    fields = [
        ("task", s.get("task")),
        ("device", f"{run.device} ({run.device_name})"),
        ("model", s.get("model")),
        ("policy", s.get("policy")),
        ("training", "on" if s.get("train") else "off"),
        ("steps", f"{s.get('steps_completed')} of {s.get('steps_planned')}"),
        ("replies sampled", _count(run.history, lambda h: h["step"] > 0)),
        ("replies stopped by the format gate", _count(run.history, lambda h: h["status"] == "gated")),
        (
            "candidates evaluated (starting submission included)",
            _count(run.history, lambda h: h["status"] != "gated"),
        ),
        ("correct candidates", _count(run.history, lambda h: h["status"] == "ok")),
        ("reference runtime (µs)", s.get("reference_runtime_us")),
        ("starting submission runtime (µs)", s.get("start_runtime_us")),
        ("best runtime (µs)", s.get("best_runtime_us")),
        ("best speedup over reference", s.get("best_speedup")),
        ("best kernel", s.get("best_candidate")),
        ("kerneldisc version", s.get("kerneldisc_version")),
        ("started", s.get("started_at")),
        ("updated", s.get("updated_at")),
    ]
    return pd.DataFrame(fields, columns=["field", "value"])


def training_comparison_table(runs: list[RunData]) -> pd.DataFrame:
    """Training on against off (best-of-N) across the runs of a suite: per task and arm, the runs
    (seeds), the correct fraction of sampled candidates and the best speedup over the starting
    submission, each as mean with min and max. Empty unless both arms are present."""
    rows = []
    for run in runs:
        history = run.history
        sampled = history[history["step"] > 0] if "step" in history.columns else history.iloc[0:0]
        correct = float((sampled["status"] == "ok").mean()) if len(sampled) else math.nan
        half = _second_half_correct(run)
        start, best = run.summary.get("start_runtime_us"), run.summary.get("best_runtime_us")
        over_start = (
            start / best
            if isinstance(start, (int, float)) and isinstance(best, (int, float)) and best > 0
            else math.nan
        )
        rows.append({"task": run.summary.get("task"), "training": "on" if run.summary.get("train") else "off",
                     "correct": correct, "correct_second_half": half, "best_over_start": over_start})  # fmt: skip
    frame = pd.DataFrame(
        rows, columns=["task", "training", "correct", "correct_second_half", "best_over_start"]
    )
    if frame.empty or set(frame["training"]) != {"on", "off"}:
        return pd.DataFrame()
    out = []
    for (task, arm), group in frame.groupby(["task", "training"], sort=True):
        row: dict[str, Any] = {"task": task, "training": arm, "runs": len(group)}
        for column in ("correct", "correct_second_half", "best_over_start"):
            values = group[column].dropna()
            row[f"{column}_mean"] = values.mean() if len(values) else math.nan
            row[f"{column}_min"] = values.min() if len(values) else math.nan
            row[f"{column}_max"] = values.max() if len(values) else math.nan
        out.append(row)
    return pd.DataFrame(out)


def run_curves(runs: list[RunData]) -> dict[str, list[pd.DataFrame]]:
    """Per group of runs ("<task>, training on|off"): each run's steps with its correct fraction
    and its best runtime's speedup over its starting submission."""
    curves: dict[str, list[pd.DataFrame]] = {}
    for run in runs:
        steps = run.steps
        if steps.empty or "step" not in steps.columns:
            continue
        start = run.summary.get("start_runtime_us")
        frame = pd.DataFrame({"step": steps["step"]})
        frame["correct_fraction"] = steps.get("correct_fraction")
        if isinstance(start, (int, float)) and "best_runtime_us" in steps.columns:
            frame["over_start"] = start / pd.to_numeric(steps["best_runtime_us"], errors="coerce")
        label = f"{run.summary.get('task')}, training {'on' if run.summary.get('train') else 'off'}"
        curves.setdefault(label, []).append(frame)
    return curves


def _second_half_correct(run: RunData) -> float:
    """The correct fraction of the candidates sampled in the second half of the run's steps."""
    history = run.history
    if history.empty or "step" not in history.columns:
        return math.nan
    steps = sorted(s for s in history["step"].unique() if s > 0)
    if not steps:
        return math.nan
    late = history[history["step"].isin(steps[len(steps) // 2 :])]
    return float((late["status"] == "ok").mean()) if len(late) else math.nan


def runs_table(runs: list[RunData]) -> pd.DataFrame:
    """Discovery runs side by side (e.g. training on against best-of-N at the same budget)."""
    rows = [
        {
            "run": run.label,
            "task": run.summary.get("task"),
            "policy": run.summary.get("policy"),
            "training": bool(run.summary.get("train")),
            "steps": run.summary.get("steps_completed"),
            "candidates": int((run.history["step"] > 0).sum()) if "step" in run.history.columns else 0,
            "best_runtime_us": run.summary.get("best_runtime_us"),
            "best_speedup": run.summary.get("best_speedup"),
        }
        for run in runs
    ]
    columns = ["run", "task", "policy", "training", "steps", "candidates", "best_runtime_us", "best_speedup"]
    return pd.DataFrame(rows, columns=columns)


def steps_table(run: RunData) -> pd.DataFrame:
    """One row per finished step; the reward list is summarised, not repeated."""
    steps = run.steps
    if steps.empty:
        return pd.DataFrame(columns=["step"])
    columns = [
        "step", "best_runtime_us", "best_speedup", "correct_fraction", "mean_beta", "loss", "kl",
        "n_candidates", "n_gated", "n_truncated", "n_language_ok", "seconds_sampling", "seconds_evaluating", "seconds_training",
    ]  # fmt: skip
    frame = steps[[c for c in columns if c in steps.columns]].copy()
    if "rewards" in steps.columns:
        rewards = steps["rewards"].apply(lambda r: list(r) if isinstance(r, list) else [])
        frame.insert(4, "reward_mean", rewards.apply(lambda r: sum(r) / len(r) if r else math.nan))
        frame.insert(5, "reward_max", rewards.apply(lambda r: max(r) if r else math.nan))
    return frame


def status_table(run: RunData) -> pd.DataFrame:
    """How many candidates ended in each status (ok, compile_error, incorrect, gated, ...)."""
    if run.history.empty or "status" not in run.history.columns:
        return pd.DataFrame(columns=["status", "candidates", "fraction"])
    counts = run.history["status"].value_counts()
    return pd.DataFrame(
        {"status": counts.index, "candidates": counts.values, "fraction": counts.values / counts.sum()}
    )


def lineage_table(run: RunData) -> pd.DataFrame:
    """The best kernel and the archive states it grew from, oldest first.

    The chain follows `parent` (an archive state id) to the history line that created that
    state; a parent with no such line is a root the run started from (the starting submission).
    """
    columns = ["generation", "state_id", "step", "runtime_us", "speedup", "gpu_compile", "candidate"]
    history = run.history
    best_state = run.summary.get("best_state")
    if history.empty or not best_state or "state_id" not in history.columns:
        return pd.DataFrame(columns=columns)
    by_state = {row["state_id"]: row for row in history.to_dict("records") if _present(row.get("state_id"))}
    if best_state not in by_state:
        return pd.DataFrame(columns=columns)
    row = by_state[best_state]
    chain, seen = [], set()
    while row is not None and row["state_id"] not in seen:
        seen.add(row["state_id"])
        chain.append(row)
        parent = row.get("parent")
        row = by_state.get(parent)
        if row is None and _present(parent):
            chain.append({"state_id": parent, "candidate": "(root: starting state)"})
    chain.reverse()
    return pd.DataFrame(
        [
            {
                "generation": i,
                "state_id": r.get("state_id"),
                "step": r.get("step"),
                "runtime_us": r.get("runtime_us"),
                "speedup": r.get("speedup"),
                "gpu_compile": gpu_compile_text(r.get("gpu_compile")),
                "candidate": r.get("candidate"),
            }
            for i, r in enumerate(chain)
        ],
        columns=columns,
    )


def bench_outcomes_table(bench: BenchData, details: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per entry; a failed entry's cause in one short line, and (`details`: entry name ->
    a file path) where its whole error and traceback are kept."""
    details = details or {}
    rows = [
        {
            "entry": o.get("name"),
            "task": o.get("task"),
            "action": o.get("action"),
            "status": o.get("status"),
            "seconds": o.get("seconds"),
            "error": short_cause(o.get("error")),
            "details": details.get(str(o.get("name")), ""),
        }
        for o in bench.outcomes
    ]
    return pd.DataFrame(rows, columns=["entry", "task", "action", "status", "seconds", "error", "details"])


def short_cause(error: Any, limit: int = 160) -> str:
    """An error's first line, cut to `limit` characters."""
    text = str(error or "").strip()
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def verdicts_table(evals: list[EvalResult]) -> pd.DataFrame:
    rows = [
        {
            "entry": e.entry,
            "candidate": e.label,
            "role": e.role,
            "status": e.verdict.get("status"),
            "runtime_us": e.verdict.get("runtime_us"),
            "reference_runtime_us": e.verdict.get("reference_runtime_us"),
            "speedup": e.verdict.get("speedup"),
            "speedup_95ci": _interval_text(e.verdict.get("speedup_ci")),
            # A CPU verdict on Triton code ran through Triton's interpreter: no GPU behaviour shows.
            "executed": "Triton interpreter" if e.verdict.get("interpreted") else e.verdict.get("device"),
            "gpu_compile": gpu_compile_text(e.verdict.get("gpu_compile")),
            "message": _first_line(e.verdict.get("message")),
        }
        for e in evals
    ]
    columns = [
        "entry",
        "candidate",
        "role",
        "status",
        "runtime_us",
        "reference_runtime_us",
        "speedup",
        "speedup_95ci",
        "executed",
        "gpu_compile",
        "message",
    ]
    return pd.DataFrame(rows, columns=columns)


def _interval_text(ci: Any) -> str:
    """A speedup's 95 % interval as "low-high", marked when it holds 1 (no telling it apart
    from the reference)."""
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)):
        return ""
    low, high = ci
    return f"{low:.3g}-{high:.3g}" + (" (same as reference)" if low <= 1.0 <= high else "")


def gpu_compile_text(entries: Any) -> str:
    """A kernel's GPU compile figures in one cell: per Triton kernel and target, registers per
    thread, spilled bytes and shared memory, or the compiler's refusal."""
    if not isinstance(entries, list):
        return ""
    parts = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        where = f"{e.get('kernel')} {e.get('target')}"
        if e.get("ok"):
            parts.append(
                f"{where}: {e.get('registers')} regs, {e.get('spill_stores') or 0} B spilled, "
                f"{e.get('shared_bytes') or 0} B shared"
            )
        elif e.get("error"):
            parts.append(f"{where}: {str(e['error']).splitlines()[0][:120]}")
    return "; ".join(parts)


def measurements(runs: list[RunData], evals: list[EvalResult]) -> list[Measurement]:
    """Every runtime our own runs measured, each labelled with the role its kernel plays."""
    found: list[Measurement] = []
    for e in evals:
        ok = e.verdict.get("status") == "ok"
        found.append(
            Measurement(
                task=_task_name(e.task, e.verdict.get("task")),
                device=_device_kind(e.device),
                device_name=e.device_name,
                role=e.role,
                kernel=e.label,
                runtime_us=_number(e.verdict.get("runtime_us")) if ok else None,
                status=str(e.verdict.get("status")),
                source=f"bench entry {e.entry}",
                task_obj=e.task,
                verdict=e.verdict if ok else None,
            )
        )
    for run in runs:
        s = run.summary
        common = dict(
            task=_task_name(run.task, s.get("task")),
            device=_device_kind(run.device),
            device_name=run.device_name,
            status="ok",
            source=f"run {run.label}",
            task_obj=run.task,
        )
        found.append(
            Measurement(
                role=ROLE_REFERENCE,
                kernel="reference.py",
                runtime_us=_number(s.get("reference_runtime_us")),
                **common,
            )
        )
        found.append(
            Measurement(
                role=ROLE_SUBMISSION,
                kernel="submission",
                runtime_us=_number(s.get("start_runtime_us")),
                **common,
            )
        )
        found.append(
            Measurement(
                role=ROLE_BEST,
                kernel=str(s.get("best_candidate")),
                runtime_us=_number(s.get("best_runtime_us")),
                **common,
            )
        )
    return found


def comparison_tables(found: list[Measurement]) -> dict[tuple[str, str], pd.DataFrame]:
    """One table per (task, device name): our measurements, then published figures for the
    same GPU model, with speedups over the eager reference and over the starting submission.

    Published GPU figures are never put beside CPU timings: on a CPU the table holds only
    what this machine measured.
    """
    tables = {}
    for (task, device_name), group in _grouped(found).items():
        rows = [m for m in group if m.runtime_us is not None or m.status != "ok"]
        first = group[0]
        if first.device != "cpu" and first.task_obj is not None:
            rows += published_baselines(first.task_obj, device_name)
        eager = _first_runtime(rows, ROLE_REFERENCE)
        start = _first_runtime(rows, ROLE_SUBMISSION)
        order = [
            ROLE_REFERENCE,
            ROLE_COMPILE,
            ROLE_SUBMISSION,
            ROLE_BEST,
            ROLE_HUMAN,
            ROLE_TTT,
            ROLE_TTT_START,
        ]
        rows.sort(key=lambda m: order.index(m.role) if m.role in order else len(order))
        tables[(task, device_name)] = pd.DataFrame(
            [
                {
                    "task": task,
                    "device": device_name,
                    "kernel": m.role if m.role == m.kernel else f"{m.role}: {m.kernel}",
                    "runtime_us": m.runtime_us,
                    "speedup_vs_eager": _ratio(_own_reference(m, eager), m.runtime_us),
                    "speedup_vs_start": _ratio(start, m.runtime_us),
                    "status": m.status,
                    "source": m.source,
                }
                for m in rows
            ],
            columns=[
                "task",
                "device",
                "kernel",
                "runtime_us",
                "speedup_vs_eager",
                "speedup_vs_start",
                "status",
                "source",
            ],
        )
    return tables


def _own_reference(m: Measurement, eager: float | None) -> float | None:
    """The reference runtime a speedup is taken against: for a verdict of ours, the reference
    timed with it (so the number is the verdict's own speedup, never a second value for the same
    kernel); else the eager reference's row."""
    if m.verdict is not None:
        own = _number(m.verdict.get("reference_runtime_us"))
        if own is not None:
            return own
    return eager


def published_baselines(task: Task, device_name: str) -> list[Measurement]:
    """The task's published figures for the GPU model in `device_name` (e.g. H100 in
    "NVIDIA H100 80GB HBM3"); nothing when the task lists no figure for that model.

    task.yml holds `baselines: {H100: {best_human_us: 1371, ttt_discover_us: 1161}, ...}`; a
    figure's source is the GPU entry's `source` / `ttt_discover_source`, or the task-wide
    `baseline_sources: {best_human_us: "...", ttt_discover_us: "..."}`.
    """
    model = match_gpu_model(device_name, task.baselines)
    entry = task.baselines.get(model) if model is not None else None
    if not isinstance(entry, dict):
        return []
    shared = task.extra.get("baseline_sources") or {}
    found = []
    for key, (role, source_key) in _PUBLISHED.items():
        value = _number(entry.get(key))
        if value is None:
            continue
        source = entry.get(source_key) or (shared.get(key) if isinstance(shared, dict) else None)
        found.append(
            Measurement(
                task=task.name,
                device="cuda",
                device_name=device_name,
                role=role,
                kernel=role,
                runtime_us=value,
                status="published",
                source=f"{source or f'{task.path.name}/task.yml'} ({model})",
                task_obj=task,
            )  # fmt: skip
        )
    return found


def match_gpu_model(device_name: str, baselines: dict) -> str | None:
    """The longest baseline key that names this GPU (so "H100" never matches an H200)."""
    name = device_name.upper().replace("-", " ")
    hits = [k for k in baselines if str(k).upper() in name.split() or f" {str(k).upper()} " in f" {name} "]
    return max(hits, key=len) if hits else None


def speed_of_light_table(found: list[Measurement], ceilings: dict[str, Ceilings]) -> pd.DataFrame:
    """Each measured kernel's roofline limit (from the task's flops/bytes expressions over its
    benchmark specs and the device's measured ceilings) and the fraction of it reached."""
    rows = []
    for m in found:
        c = ceilings.get(m.device_name)
        if m.runtime_us is None or m.task_obj is None or c is None:
            continue
        limit = roofline_limit_us(m.task_obj, m.device, c)
        if limit is None:
            continue
        rows.append(
            {
                "task": m.task,
                "device": m.device_name,
                "kernel": m.role if m.role == m.kernel else f"{m.role}: {m.kernel}",
                "runtime_us": m.runtime_us,
                "roofline_limit_us": limit,
                "fraction_of_roofline": limit / m.runtime_us,
                "source": m.source,
            }
        )
    columns = [
        "task",
        "device",
        "kernel",
        "runtime_us",
        "roofline_limit_us",
        "fraction_of_roofline",
        "source",
    ]
    return pd.DataFrame(rows, columns=columns)


def roofline_limit_us(task: Task, device: str, ceilings: Ceilings) -> float | None:
    """The limit aggregated over the device's benchmark specs the way the task ranks runtimes."""
    if not task.flops and not task.bytes:
        return None
    _, benchmarks = task.specs_for(device)
    limits = []
    for spec in benchmarks:
        flops = eval_spec_expr(task.flops, spec) if task.flops else None
        nbytes = eval_spec_expr(task.bytes, spec) if task.bytes else None
        limit = ceilings.limit_us(flops, nbytes)
        if limit:
            limits.append(limit)
    if not limits:
        return None
    return aggregate(limits, task.ranking_by)


def _grouped(found: list[Measurement]) -> dict[tuple[str, str], list[Measurement]]:
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in found:
        groups.setdefault((m.task, m.device_name), []).append(m)
    return groups


def _first_runtime(rows: list[Measurement], role: str) -> float | None:
    return next((m.runtime_us for m in rows if m.role == role and m.runtime_us), None)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _task_name(task: Task | None, recorded: object) -> str:
    return task.name if task is not None else str(recorded or "unknown")


def _device_kind(device: str) -> str:
    return "cpu" if device.startswith("cpu") else "cuda"


def _first_line(text: object) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
