"""Assemble a report from run and bench folders and write it: HTML, Markdown, PNG plots, CSV tables."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd

import kerneldisc.report.plots as plots
import kerneldisc.report.tables as tables
from kerneldisc.atomic import replace_dir
from kerneldisc.errors import ConfigError
from kerneldisc.report.ceilings import Ceilings, get_ceilings, load_cached, local_device_name
from kerneldisc.report.document import Code, Document, Figure, Items, Notice, Paragraph, Section, Table
from kerneldisc.report.html import render_html
from kerneldisc.report.markdown import render_markdown
from kerneldisc.report.sources import BenchData, RunData, load_source

log = logging.getLogger(__name__)

CPU_NOTICE = (
    "CPU timings: the kernels below were timed on a CPU (Triton's interpreter or eager PyTorch). "
    "They are not comparable with GPU baselines, and no GPU baseline is shown beside them."
)
L2_NOTE = (
    "Our timings flush the L2 cache before every timed call; published leaderboard figures for "
    "some tasks were measured without a flush, so the same kernel may look slightly slower here."
)


def build_report(paths: list[Path], out_dir: Path | None = None) -> Path:
    """Write report.html, report.md, plots/*.png and tables/*.csv for the given run and bench
    folders; returns the report folder (default: `<folder>/report` for a single folder)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("give at least one run or bench folder")
    if out_dir is None:
        if len(paths) > 1:
            raise ConfigError("several folders make one combined report: say where with --out DIR")
        out_dir = paths[0] / "report"
    out_dir = Path(out_dir)
    if out_dir.is_file() or (
        out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "report.md").is_file()
    ):  # a report replaces its own folder whole, so it never writes over anything else
        raise ConfigError(f"{out_dir} exists and is not a report folder; choose another --out")
    sources = [load_source(p) for p in paths]

    def write(folder: Path) -> None:  # made whole aside, then swapped in: never half a report
        folder.mkdir(parents=True)
        doc = compose(sources, folder)
        _write_tables(doc, folder / "tables")
        (folder / "report.html").write_text(render_html(doc))
        (folder / "report.md").write_text(render_markdown(doc, folder))

    replace_dir(out_dir, write)
    return out_dir


def compose(sources: list[RunData | BenchData], out_dir: Path) -> Document:
    runs = [s for s in sources if isinstance(s, RunData)]
    benches = [s for s in sources if isinstance(s, BenchData)]
    all_runs = runs + [r for b in benches for r in b.runs]
    evals = [e for b in benches for e in b.evals]
    found = tables.measurements(all_runs, evals)
    names = _unique_names([s.path for s in sources])

    header = _header(sources, found)
    sections = [_comparison_section(found, benches, out_dir)]
    for source, name in zip(sources, names, strict=True):
        if isinstance(source, RunData):
            sections.append(_run_section(source, name, out_dir))
        else:
            sections.append(_bench_section(source, name, out_dir))
    # Every task the folders hold, measured or not (a failed entry's task too).
    named = {m.task for m in found} | {str(r.summary.get("task")) for r in all_runs if r.summary.get("task")}
    named |= {_task_label(o) for b in benches for o in b.outcomes if o.get("task")}
    title = "kerneldisc report: " + ", ".join(sorted(named) or ["no results"])
    return Document(title=title, header=header, sections=sections)


def _header(sources, found) -> list:
    blocks = [Paragraph("Built from: " + ", ".join(str(s.path) for s in sources))]
    devices = sorted({f"{m.device_name} ({m.device})" for m in found})
    if devices:
        blocks.append(Paragraph("Devices: " + ", ".join(devices)))
    if any(m.device == "cpu" for m in found):
        blocks.append(Notice(CPU_NOTICE))
    return blocks


def _comparison_section(found: list[tables.Measurement], benches: list[BenchData], out_dir: Path) -> Section:
    section = Section("Comparison per task and device")
    comparisons = tables.comparison_tables(found)
    if not comparisons:
        section.blocks.append(Paragraph("No runtimes were recorded in these folders."))
    for (task, device_name), frame in comparisons.items():
        on_cpu = any(m.device == "cpu" for m in found if m.task == task and m.device_name == device_name)
        caption = f"{task} on {device_name}" + (
            " (CPU timings: not comparable with GPU figures)" if on_cpu else ""
        )
        section.blocks.append(Table(f"comparison_{_slug(task)}_{_slug(device_name)}", frame, caption))
        if pd.to_numeric(frame["runtime_us"], errors="coerce").notna().any():
            png = out_dir / "plots" / f"comparison_{_slug(task)}_{_slug(device_name)}.png"
            section.blocks.append(Figure(plots.plot_kernels(frame, png, caption), f"runtimes: {caption}"))
    if any(m.device != "cpu" for m in found):
        section.blocks.append(Paragraph(L2_NOTE))
        tasks = {m.task_obj.name: m.task_obj for m in found if m.device != "cpu" and m.task_obj is not None}
        for task in tasks.values():
            if task.extra.get("baseline_notes"):
                section.blocks.append(
                    Paragraph(f"{task.name}: {' '.join(str(task.extra['baseline_notes']).split())}")
                )
    sol = tables.speed_of_light_table(found, _ceilings(found, benches))
    section.subsections.append(_speed_of_light(sol, found, out_dir))
    return section


def _speed_of_light(sol, found, out_dir: Path) -> Section:
    section = Section("Speed of light")
    section.blocks.append(
        Paragraph(
            "Roofline limit per benchmark = max(FLOPs / measured matmul rate, bytes / measured copy "
            "bandwidth), aggregated over the benchmarks the way the task ranks runtimes; the fraction "
            "is limit / runtime (1.0 would be a kernel at the speed of light). The bandwidth is that of a "
            "large copy from memory, so a working set that fits in cache (common with the small CPU "
            "shapes) can run above 1."
        )
    )
    if sol.empty:
        tasks = {m.task: m.task_obj for m in found if m.task_obj is not None}
        bare = sorted(name for name, task in tasks.items() if not (task.flops or task.bytes))
        if tasks and len(bare) == len(tasks):
            reason = (
                f"{', '.join(bare)} declare{'s' if len(bare) == 1 else ''} no `flops` or `bytes` "
                "expression (task.yml), so no limit can be computed; KernelBench files have none"
            )
        else:
            reason = (
                "no ceilings (matmul rate, copy bandwidth) are recorded for these devices, and this "
                "machine cannot measure them (it does not have them)"
            )
        section.blocks.append(Paragraph(f"No roofline figures: {reason}."))
    else:
        section.blocks.append(Table("speed_of_light", sol, "fraction of the roofline limit"))
        section.blocks.append(
            Figure(
                plots.plot_roofline(sol, out_dir / "plots" / "speed_of_light.png"),
                "fraction of the roofline limit",
            )
        )
    return section


def _ceilings(found, benches: list[BenchData]) -> dict[str, Ceilings]:
    """Ceilings per device name: recorded beside bench results, cached, or measured now when this
    machine has that device."""
    known: dict[str, Ceilings] = {}
    for bench in benches:
        recorded = bench.path / "ceilings.json"
        if recorded.is_file():
            for name, values in json.loads(recorded.read_text()).items():
                known[name] = Ceilings(**values)
    for m in found:
        if m.device_name in known:
            continue
        cached = load_cached(m.device_name)
        if cached is not None:
            known[m.device_name] = cached
            continue
        local = "cuda:0" if m.device == "cuda" else "cpu"
        if _here(m.device, m.device_name, local):
            known[m.device_name] = get_ceilings(local)
    return known


def _here(kind: str, device_name: str, local: str) -> bool:
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            return False
    return device_name in (local_device_name(local), kind)


def _run_section(run: RunData, name: str, out_dir: Path) -> Section:
    s = run.summary
    section = Section(f"Discovery run {name}: {s.get('task')} on {run.device_name}")
    if run.device == "cpu":
        section.blocks.append(Notice(CPU_NOTICE))
    if run.task_error:
        section.blocks.append(Paragraph(f"Task not loaded ({run.task_error}): no baselines or roofline."))
    slug = _slug(name)
    section.blocks.append(Table(f"run_{slug}_summary", tables.run_summary_table(run), "summary"))
    if run.steps.empty:
        section.blocks.append(Paragraph("No step has finished yet."))
    else:
        plot_dir = out_dir / "plots"
        section.blocks += [
            Figure(plots.plot_progress(run.steps, plot_dir / f"{slug}_progress.png"),
                   "best runtime and best speedup against step"),
            Figure(plots.plot_rewards(run.steps, plot_dir / f"{slug}_rewards.png"),
                   "reward distribution and correct fraction per step"),
            Figure(plots.plot_learning(run.steps, plot_dir / f"{slug}_learning.png"),
                   "entropic β and policy loss per step"),
            Table(f"run_{slug}_steps", tables.steps_table(run), "per step"),
        ]  # fmt: skip
    section.blocks.append(Table(f"run_{slug}_statuses", tables.status_table(run), "candidates by outcome"))
    lineage = tables.lineage_table(run)
    lineage_section = Section("Lineage of the best kernel")
    if lineage.empty:
        lineage_section.blocks.append(Paragraph("No best kernel with a recorded lineage."))
    else:
        lineage_section.blocks.append(Items([_lineage_line(row) for row in lineage.to_dict("records")]))
        lineage_section.blocks.append(Table(f"run_{slug}_lineage", lineage, "oldest ancestor first"))
    section.subsections.append(lineage_section)
    best = run.path / "best_kernel.py"
    code = Section("Best kernel")
    code.blocks.append(Code(best.read_text()) if best.is_file() else Paragraph("No best kernel yet."))
    compiled = lineage["gpu_compile"].iloc[-1] if not lineage.empty else ""
    if compiled:
        code.blocks.append(Paragraph(f"Compiled for a GPU by the evaluator: {compiled}."))
    section.subsections.append(code)
    return section


def _task_label(outcome: dict) -> str:
    """A bench entry's task as people name it: the task's name, or a path's last part."""
    task = str(outcome.get("task"))
    return Path(task).stem if "/" in task else task


def _bench_section(bench: BenchData, name: str, out_dir: Path) -> Section:
    section = Section(f"Bench suite {bench.name} ({name})")
    details = _failure_details(bench, name, out_dir)
    outcomes = tables.bench_outcomes_table(bench, details)
    failed = outcomes[outcomes["status"] != "done"]
    if not failed.empty:
        causes = "; ".join(f"{row.entry} ({row.task}): {row.error}" for row in failed.itertuples())
        section.blocks.append(
            Notice(
                f"{len(failed)} of {len(outcomes)} entries failed: {causes} (whole errors: the details column)"
            )
        )
    section.blocks.append(Table(f"bench_{_slug(name)}_entries", outcomes, "entries"))
    if bench.evals:
        section.blocks.append(
            Table(f"bench_{_slug(name)}_verdicts", tables.verdicts_table(bench.evals), "verdicts")
        )
    if len(bench.runs) > 1:
        caption = "discovery runs side by side (candidates: sampled after the starting state)"
        section.blocks.append(Table(f"bench_{_slug(name)}_runs", tables.runs_table(bench.runs), caption))
        curves = tables.run_curves(bench.runs)
        if curves:
            section.blocks.append(
                Figure(
                    plots.plot_runs(curves, out_dir / "plots" / f"bench_{_slug(name)}_runs.png"),
                    "the runs per step, grouped by task and training on or off: mean line, min-max band across seeds",
                )
            )
        comparison = tables.training_comparison_table(bench.runs)
        if not comparison.empty:
            caption = (
                "training on against off at an equal sample budget, over the runs (seeds) of each arm: "
                "correct fraction of sampled candidates (all steps, and the second half of the steps) "
                "and the best kernel's speedup over the starting submission, mean with min and max"
            )
            section.blocks.append(Table(f"bench_{_slug(name)}_training", comparison, caption))
    names = _unique_names([r.path.parent for r in bench.runs])
    for run, run_name in zip(bench.runs, names, strict=True):
        section.subsections.append(_run_section(run, f"{name}-{run_name}", out_dir))
    return section


def _failure_details(bench: BenchData, name: str, out_dir: Path) -> dict[str, str]:
    """Each failed entry's whole error, and its traceback where the bench kept one, in a file of
    the report (`failures/`); entry name -> that file's path relative to the report."""
    details = {}
    for outcome in bench.outcomes:
        if outcome.get("status") == "done" or not outcome.get("error"):
            continue
        entry = str(outcome.get("name"))
        text = f"entry {entry} (task {outcome.get('task')}): {outcome['error']}\n"
        trace = bench.path / "entries" / entry / "traceback.txt"
        if trace.is_file():
            text += "\n" + trace.read_text(errors="replace")
        relative = f"failures/{_slug(name)}_{_slug(entry)}.txt"
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / relative).write_text(text)
        details[entry] = relative
    return details


def _lineage_line(row: dict) -> str:
    runtime = row.get("runtime_us")
    runtime_text = f"{runtime:.4g} µs" if isinstance(runtime, float) and runtime == runtime else "no runtime"
    step = row.get("step")
    where = f"step {int(step)}" if isinstance(step, (int, float)) and step == step else "start"
    return f"generation {row['generation']}: state {row.get('state_id')} ({where}, {runtime_text}) {row.get('candidate')}"


def _write_tables(doc: Document, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for table in doc.tables():
        table.frame.to_csv(folder / f"{table.name}.csv", index=False)


def _unique_names(paths: list[Path]) -> list[str]:
    names = []
    for p in paths:
        base, n = p.name or "run", 1
        name = base
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"
