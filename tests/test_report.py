"""Reports built from a real small bench folder: evaluator verdicts plus a scripted discovery run."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import textwrap
from html import escape as html_escape
from pathlib import Path

import pandas as pd
import pytest

from kerneldisc.bench import load_suite, run_suite
from kerneldisc.errors import ConfigError
from kerneldisc.report import build_report
from kerneldisc.report import ceilings as ceilings_mod
from kerneldisc.report.compose import CPU_NOTICE
from kerneldisc.report.sources import load_run
from kerneldisc.report.tables import (
    Measurement,
    comparison_tables,
    lineage_table,
    published_baselines,
    run_summary_table,
)
from kerneldisc.task import eval_spec_expr, load_task

REPO = Path(__file__).resolve().parent.parent
SUBMISSION = (REPO / "reference_kernels" / "vectoradd" / "submission.py").read_text()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _reply(code: str) -> str:
    return f"Here is a kernel.\n```python\n{code}```\n"


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    """A CPU bench folder: eval verdicts for vectoradd and a two-step scripted discovery."""
    root = tmp_path_factory.mktemp("bench")
    replies = [
        _reply(SUBMISSION.replace("block = 1024", "block = 256")),
        "I cannot write this kernel.",
        _reply(SUBMISSION.replace("block = 1024", "block = 4096")),
        _reply(SUBMISSION.replace("a + b", "a - b")),
    ]
    script = root / "replies.json"
    script.write_text(json.dumps(replies))
    suite = root / "suite.yml"
    suite.write_text(
        textwrap.dedent(
            f"""\
            name: report-fixture
            device: cpu
            entries:
              - task: vectoradd
                eval: ["@submission", "@reference"]
              - task: vectoradd
                name: search
                discover: {{policy: scripted, script: {script}, train: false, steps: 2,
                           groups: 1, group_size: 2, seed: 0}}
              - task: vectoradd
                name: search-short
                discover: {{policy: scripted, script: {script}, train: false, steps: 1,
                           groups: 1, group_size: 2, seed: 1}}
            """
        )
    )
    result = run_suite(load_suite(suite), root / "out")
    assert not result.failed, result.failed
    build_report([root / "out"])
    return root / "out"


@pytest.fixture(scope="module")
def report_dir(bench_dir) -> Path:
    return bench_dir / "report"


def _verdict(bench_dir: Path, label: str) -> dict:
    outcome = json.loads((bench_dir / "entries" / "vectoradd-eval" / "outcome.json").read_text())
    item = next(v for v in outcome["verdicts"] if v["label"] == label)
    return json.loads((bench_dir / "entries" / "vectoradd-eval" / item["verdict_file"]).read_text())


def _comparison(report_dir: Path) -> pd.DataFrame:
    files = list((report_dir / "tables").glob("comparison_vectoradd_*.csv"))
    assert len(files) == 1, files
    return pd.read_csv(files[0])


def _row(frame: pd.DataFrame, kernel_prefix: str) -> pd.Series:
    rows = frame[frame["kernel"].str.startswith(kernel_prefix)]
    assert len(rows) >= 1, f"no row {kernel_prefix!r} in {list(frame['kernel'])}"
    return rows.iloc[0]


def test_report_writes_html_markdown_plots_and_every_table_as_csv(report_dir):
    html = (report_dir / "report.html").read_text()
    markdown = (report_dir / "report.md").read_text()
    pngs = sorted((report_dir / "plots").glob("*.png"))
    for kind in ("progress", "rewards", "learning"):
        assert any(p.name.endswith(f"_{kind}.png") for p in pngs), f"no {kind} plot in {pngs}"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert base64.b64encode(png.read_bytes()).decode() in html  # inline, self-contained
        assert f"plots/{png.name}" in markdown
    table_ids = re.findall(r'<table id="([^"]+)"', html)
    csvs = {p.stem for p in (report_dir / "tables").glob("*.csv")}
    assert table_ids and set(table_ids) == csvs
    assert 'src="http' not in html and 'href="http' not in html


def test_comparison_table_holds_the_runtimes_the_bench_measured(bench_dir, report_dir):
    frame = _comparison(report_dir)
    eager = _verdict(bench_dir, "@reference")
    start = _verdict(bench_dir, "@submission")
    summary = json.loads((bench_dir / "entries" / "search" / "run" / "summary.json").read_text())
    eager_row = _row(frame, "eager reference: @reference")
    assert eager_row["runtime_us"] == pytest.approx(eager["runtime_us"], rel=1e-9)
    start_row = _row(frame, "starting submission: @submission")
    assert start_row["runtime_us"] == pytest.approx(start["runtime_us"], rel=1e-9)
    # one speedup per kernel: the verdict's own (against the reference timed with it), in both tables
    assert start_row["speedup_vs_eager"] == pytest.approx(start["speedup"])
    verdicts = pd.read_csv(next((report_dir / "tables").glob("bench_*_verdicts.csv")))
    assert verdicts[verdicts["candidate"] == "@submission"]["speedup"].iloc[0] == pytest.approx(
        start["speedup"]
    )
    best_row = _row(frame[frame["source"] == "run search"], "best found")
    assert best_row["runtime_us"] == pytest.approx(summary["best_runtime_us"], rel=1e-9)
    assert best_row["speedup_vs_start"] == pytest.approx(start["runtime_us"] / summary["best_runtime_us"])


def test_the_verdicts_table_says_which_kernels_ran_through_the_triton_interpreter(bench_dir, report_dir):
    frame = pd.concat(pd.read_csv(p) for p in (report_dir / "tables").glob("bench_*_verdicts.csv"))
    submission = frame[frame["candidate"] == "@submission"].iloc[0]  # vectoradd's Triton kernel
    reference = frame[frame["candidate"] == "@reference"].iloc[0]  # plain torch
    assert _verdict(bench_dir, "@submission")["interpreted"] is True
    assert submission["executed"] == "Triton interpreter" and reference["executed"] == "cpu"


def test_cpu_report_warns_and_never_shows_gpu_baselines(report_dir):
    html = (report_dir / "report.html").read_text()
    assert html_escape(CPU_NOTICE) in html
    assert CPU_NOTICE in (report_dir / "report.md").read_text()
    assert not _comparison(report_dir)["status"].eq("published").any()
    trimul = load_task("trimul")
    measured = dict(task="trimul", role="starting submission", kernel="x", runtime_us=5000.0, status="ok",
                    source="test", task_obj=trimul)  # fmt: skip
    cpu = comparison_tables([Measurement(device="cpu", device_name="AMD EPYC", **measured)])
    assert list(cpu.values())[0]["status"].tolist() == ["ok"]
    gpu = comparison_tables([Measurement(device="cuda", device_name="NVIDIA H100 80GB HBM3", **measured)])
    table = list(gpu.values())[0]
    published = table[table["status"] == "published"]
    assert sorted(published["runtime_us"]) == sorted(
        [trimul.baselines["H100"]["best_human_us"], trimul.baselines["H100"]["ttt_discover_us"]]
    )
    human = published[published["kernel"].str.startswith("best human")].iloc[0]
    assert human["speedup_vs_start"] == pytest.approx(5000.0 / trimul.baselines["H100"]["best_human_us"])


def test_published_baselines_match_only_the_same_gpu_model():
    trimul = load_task("trimul")
    assert {m.runtime_us for m in published_baselines(trimul, "NVIDIA H100 80GB HBM3")} == {
        float(trimul.baselines["H100"]["best_human_us"]),
        float(trimul.baselines["H100"]["ttt_discover_us"]),
    }
    assert published_baselines(trimul, "NVIDIA H200") == []  # "H100" is not a prefix match
    assert published_baselines(load_task("vectoradd"), "NVIDIA H100 80GB HBM3") == []


def test_lineage_leads_from_the_starting_state_to_the_best_kernel(bench_dir, report_dir):
    run = bench_dir / "entries" / "search" / "run"
    summary = json.loads((run / "summary.json").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    parents = {h["state_id"]: h["parent"] for h in history if h.get("state_id")}
    lineage = pd.read_csv(next((report_dir / "tables").glob("run_*_lineage.csv")))
    assert lineage["state_id"].iloc[-1] == summary["best_state"]
    assert pd.isna(parents[lineage["state_id"].iloc[0]])  # the chain starts at a root
    for older, newer in zip(lineage["state_id"], lineage["state_id"].iloc[1:], strict=False):
        assert parents[newer] == older
    html = (report_dir / "report.html").read_text()
    best_code = (run / "best_kernel.py").read_text()
    assert "offsets < n" in best_code and "offsets &lt; n" in html  # the code block is HTML-escaped


def test_lineage_of_a_step_two_kernel_reaches_back_to_the_root(bench_dir):
    """Whichever kernel timed best, the correct step-2 reply grew from an earlier state."""
    run = load_run(bench_dir / "entries" / "search" / "run")
    step2 = run.history[(run.history["step"] == 2) & run.history["state_id"].notna()]
    assert len(step2) >= 1
    run.summary["best_state"] = step2["state_id"].iloc[0]
    lineage = lineage_table(run)
    assert len(lineage) >= 2 and lineage["step"].iloc[0] == 0 and lineage["step"].iloc[-1] == 2
    assert lineage["candidate"].iloc[-1] == step2["candidate"].iloc[0]


def test_steps_table_and_plots_come_from_the_run(bench_dir, report_dir):
    steps = [
        json.loads(line) for line in (bench_dir / "entries/search/run/steps.jsonl").read_text().splitlines()
    ]
    table = pd.read_csv(next((report_dir / "tables").glob("run_*_steps.csv")))
    assert table["step"].tolist() == [s["step"] for s in steps]
    assert table["correct_fraction"].tolist() == pytest.approx([s["correct_fraction"] for s in steps])
    assert table["reward_max"].tolist() == pytest.approx([max(s["rewards"]) for s in steps])
    # replies cut at max_new_tokens and replies in the task's kernel language, counted per step
    assert table["n_truncated"].tolist() == [s["n_truncated"] for s in steps]
    assert table["n_language_ok"].tolist() == [s["n_language_ok"] for s in steps]


def test_speed_of_light_uses_the_task_counts_and_measured_ceilings(bench_dir, report_dir):
    ceilings = json.loads((bench_dir / "ceilings.json").read_text())
    ((name, ceiling),) = ceilings.items()
    task = load_task("vectoradd")
    limits = [
        max(
            eval_spec_expr(task.flops, s) / ceiling["matmul_flops_per_s"],
            eval_spec_expr(task.bytes, s) / ceiling["copy_bytes_per_s"],
        )
        * 1e6
        for s in task.cpu_benchmarks
    ]
    expected_limit = math.exp(sum(math.log(x) for x in limits) / len(limits))  # vectoradd ranks by geom
    sol = pd.read_csv(report_dir / "tables" / "speed_of_light.csv")
    assert len(sol) >= 3 and set(sol["device"]) == {name}
    assert sol["roofline_limit_us"].tolist() == pytest.approx([expected_limit] * len(sol))
    assert sol["fraction_of_roofline"].tolist() == pytest.approx(
        (sol["roofline_limit_us"] / sol["runtime_us"]).tolist()
    )


def test_ceilings_are_measured_once_per_device_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELDISC_CACHE", str(tmp_path))
    first = ceilings_mod.get_ceilings("cpu")
    assert first.copy_bytes_per_s > 0 and first.matmul_flops_per_s > 0
    cache = json.loads((tmp_path / "ceilings.json").read_text())
    cache[first.device_name]["copy_bytes_per_s"] = 123.0  # a second call must read, not re-measure
    (tmp_path / "ceilings.json").write_text(json.dumps(cache))
    assert ceilings_mod.get_ceilings("cpu").copy_bytes_per_s == 123.0


def test_several_folders_make_one_report_with_a_section_each(bench_dir, tmp_path):
    run = bench_dir / "entries" / "search" / "run"
    with pytest.raises(ConfigError, match="--out"):
        build_report([run, bench_dir])
    out = build_report([run, bench_dir], tmp_path / "combined")
    html = (out / "report.html").read_text()
    assert "Discovery run run:" in html and "Bench suite report-fixture" in html
    with pytest.raises(ConfigError, match="neither a discovery run folder"):
        build_report([tmp_path], tmp_path / "x")


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
    ]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (scripts/setup.sh installs it when CI=1 as root)"
)
def test_html_report_renders_in_headless_chromium_with_tables_and_images(report_dir, tmp_path):
    url = (report_dir / "report.html").resolve().as_uri()
    dom = _chromium("--dump-dom", url, profile=tmp_path / "profile").stdout
    assert 'id="speed_of_light"' in dom and "<tbody>" in dom
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', dom)) >= 3
    shot = tmp_path / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2000", url, profile=tmp_path / "profile2")
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_bench_report_puts_its_discovery_runs_side_by_side(bench_dir, report_dir):
    runs = pd.read_csv(next((report_dir / "tables").glob("bench_*_runs.csv")))
    assert sorted(runs["run"]) == ["search", "search-short"]
    for row in runs.to_dict("records"):
        summary = json.loads((bench_dir / "entries" / row["run"] / "run" / "summary.json").read_text())
        assert row["steps"] == summary["steps_completed"]
        assert row["best_runtime_us"] == pytest.approx(summary["best_runtime_us"], rel=1e-9)
        history = (bench_dir / "entries" / row["run"] / "run" / "history.jsonl").read_text().splitlines()
        assert row["candidates"] == sum(json.loads(line)["step"] > 0 for line in history)


def test_run_summary_counts_replies_gated_evaluated_and_correct_from_history(bench_dir):
    run = load_run(bench_dir / "entries" / "search" / "run")
    table = dict(zip(run_summary_table(run)["field"], run_summary_table(run)["value"], strict=True))
    history = [
        json.loads(line) for line in (bench_dir / "entries" / "search" / "run" / "history.jsonl").open()
    ]
    assert table["replies sampled"] == sum(h["step"] > 0 for h in history)
    assert table["replies stopped by the format gate"] == sum(h["status"] == "gated" for h in history)
    assert table["candidates evaluated (starting submission included)"] == sum(
        h["status"] != "gated" for h in history
    )
    assert table["correct candidates"] == sum(h["status"] == "ok" for h in history) > 0


def test_gpu_compile_figures_stand_beside_each_kernel(bench_dir, report_dir):
    """The evaluator's sm_90 compile of each Triton kernel (registers, spills, shared memory) is in
    the history, the lineage table, the verdicts table and under the best kernel."""
    history = [
        json.loads(line) for line in (bench_dir / "entries/search/run/history.jsonl").read_text().splitlines()
    ]
    compiled = [h for h in history if h["status"] == "ok"]
    assert compiled and all(h["gpu_compile"][0]["target"] == "sm_90" for h in compiled)
    assert all(h["gpu_compile"][0]["registers"] > 0 for h in compiled)
    lineage = pd.read_csv(next((report_dir / "tables").glob("run_*search_lineage.csv")))
    assert "sm_90" in lineage["gpu_compile"].iloc[-1] and "regs" in lineage["gpu_compile"].iloc[-1]
    verdicts = pd.read_csv(next((report_dir / "tables").glob("bench_*_verdicts.csv")))
    submission = verdicts[verdicts["candidate"] == "@submission"]
    assert "add_kernel sm_90" in submission["gpu_compile"].iloc[0]
    low, high = (float(x) for x in submission["speedup_95ci"].iloc[0].split(" ")[0].split("-"))
    assert low <= submission["speedup"].iloc[0] <= high  # each speedup with its 95 % interval
    assert "Compiled for a GPU by the evaluator: add_kernel sm_90" in (report_dir / "report.md").read_text()


def test_training_on_and_off_are_compared_with_their_spread_over_seeds(tmp_path):
    """A suite's runs with training on and off: per arm the runs, the correct fraction (all steps
    and the second half) and the best kernel over the starting submission, mean, min and max."""
    from kerneldisc.report.sources import RunData
    from kerneldisc.report.tables import training_comparison_table

    def run(train: bool, statuses: list[list[str]], best: float) -> RunData:
        rows = [{"step": 0, "status": "ok"}] + [
            {"step": step, "status": status} for step, line in enumerate(statuses, 1) for status in line
        ]
        summary = {"task": "vectoradd", "train": train, "start_runtime_us": 1000.0, "best_runtime_us": best}
        return RunData(tmp_path, summary, pd.DataFrame(rows), pd.DataFrame(), None, None)

    runs = [
        run(True, [["ok", "crash"], ["ok", "ok"]], 100.0),  # 3/4 correct, 2/2 late, 10x
        run(True, [["crash", "crash"], ["ok", "crash"]], 500.0),  # 1/4, 1/2, 2x
        run(False, [["crash", "crash"], ["crash", "ok"]], 250.0),  # 1/4, 1/2, 4x
    ]
    table = training_comparison_table(runs).set_index("training")
    assert table.loc["on", "runs"] == 2 and table.loc["off", "runs"] == 1
    assert table.loc["on", "correct_mean"] == pytest.approx(0.5)
    assert (table.loc["on", "correct_min"], table.loc["on", "correct_max"]) == (0.25, 0.75)
    assert table.loc["on", "correct_second_half_mean"] == pytest.approx(0.75)
    assert (table.loc["on", "best_over_start_min"], table.loc["on", "best_over_start_max"]) == (2.0, 10.0)
    assert table.loc["off", "best_over_start_mean"] == pytest.approx(4.0)
    assert training_comparison_table(runs[:2]).empty  # one arm only: nothing to compare


def test_failed_entries_are_named_with_a_short_cause_and_their_whole_error_kept(tmp_path):
    """A suite with an entry that fails and a KernelBench file (no FLOP or byte expressions): the
    title names both tasks, the failure shows one line and links a file with the whole error,
    and the roofline note says why there is no figure."""
    kb = REPO / "tests" / "fixtures" / "kernelbench"
    suite = tmp_path / "suite.yml"
    suite.write_text(
        textwrap.dedent(
            f"""\
            name: failing
            device: cpu
            entries:
              - task: {tmp_path / "no_such_task"}
                name: missing
                eval: ["@reference"]
              - task: {kb / "kb_sum_problem.py"}
                name: kb
                eval: ["{kb / "kb_sum_honest.py"}"]
            """
        )
    )
    result = run_suite(load_suite(suite), tmp_path / "out")
    assert [o["name"] for o in result.failed] == ["missing"]
    report = build_report([tmp_path / "out"])
    markdown = (report / "report.md").read_text()
    title = markdown.splitlines()[0]
    assert "kb_sum_problem" in title and "no_such_task" in title
    entries = pd.read_csv(next((report / "tables").glob("bench_*_entries.csv")))
    missing = entries[entries["entry"] == "missing"].iloc[0]
    assert "\n" not in missing["error"] and len(missing["error"]) <= 160
    detail = report / missing["details"]
    assert detail.is_file() and result.failed[0]["error"] in detail.read_text()
    assert "1 of 2 entries failed: missing" in markdown
    assert "kb_sum_problem declares no `flops` or `bytes` expression" in markdown


def test_several_runs_of_a_suite_are_drawn_on_one_chart(bench_dir, report_dir):
    """The suite's two discovery runs: per step, on one picture, grouped by task and training."""
    from kerneldisc.report.sources import load_bench
    from kerneldisc.report.tables import run_curves

    curves = run_curves(load_bench(bench_dir).runs)
    assert list(curves) == ["vectoradd, training off"] and len(curves["vectoradd, training off"]) == 2
    (png,) = (report_dir / "plots").glob("bench_*_runs.png")
    assert (
        png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        and f"plots/{png.name}" in (report_dir / "report.md").read_text()
    )


def test_a_report_of_bench_folders_has_pictures_of_the_kernels_and_the_roofline(report_dir):
    """Per task and device a runtime chart of every measured kernel, and the roofline fractions."""
    markdown = (report_dir / "report.md").read_text()
    (chart,) = (report_dir / "plots").glob("comparison_vectoradd_*.png")
    roofline = report_dir / "plots" / "speed_of_light.png"
    for png in (chart, roofline):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plots/{png.name}" in markdown
