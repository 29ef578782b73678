"""Benchmark suites: loading, running with the real evaluator, failures, resume, parallel entries."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from kerneldisc.bench import load_suite, read_outcome, run_suite
from kerneldisc.errors import ConfigError
from kerneldisc.task import load_task

REPO = Path(__file__).resolve().parent.parent
# A correct candidate that the evaluator times in plain torch (no Triton interpreter): cheap.
TORCH_VECTORADD = "def custom_kernel(data):\n    a, b = data\n    return a + b\n"


@pytest.fixture(scope="session")
def _cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _ceilings_cache(_cache_dir, monkeypatch):
    """Device ceilings are measured once for the whole session, away from the user's cache."""
    monkeypatch.setenv("KERNELDISC_CACHE", str(_cache_dir))


def write_suite(folder: Path, text: str, name: str = "suite.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_suites_name_existing_tasks_and_candidates():
    for name in ("reference", "ttt_vs_bestofn"):
        suite = load_suite(REPO / "benchmarks" / f"{name}.yml")
        assert suite.entries
        for entry in suite.entries:
            task = load_task(entry.task)
            if "@submission" in entry.candidates:
                assert task.submission_path is not None, f"{task.name} has no submission.py"
    reference = load_suite(REPO / "benchmarks" / "reference.yml")
    from kerneldisc.task import list_reference_tasks

    assert {e.task for e in reference.entries} == set(list_reference_tasks())
    ablation = load_suite(REPO / "benchmarks" / "ttt_vs_bestofn.yml")
    budgets = {
        (e.settings["steps"], e.settings["groups"], e.settings["group_size"]) for e in ablation.entries
    }
    assert len(budgets) == 1, "training on and off must get the same sample budget"
    arms = sorted((e.settings["seed"], e.settings["train"]) for e in ablation.entries)
    assert arms == [(0, False), (0, True), (1, False), (1, True)], "each seed runs both arms"


def test_kernelbench_suite_needs_a_checkout_path(tmp_path, monkeypatch):
    monkeypatch.delenv("KERNELBENCH_ROOT", raising=False)
    with pytest.raises(ConfigError, match="kernelbench_root.*KERNELBENCH_ROOT"):
        load_suite(REPO / "benchmarks" / "kernelbench.yml")
    with pytest.raises(ConfigError, match="KernelBench checkout .* not found"):
        load_suite(REPO / "benchmarks" / "kernelbench.yml", {"kernelbench_root": str(tmp_path / "absent")})


def test_kernelbench_problems_are_picked_by_level_and_number(tmp_path, monkeypatch):
    level1 = tmp_path / "KernelBench" / "KernelBench" / "level1"
    level1.mkdir(parents=True)
    for number, name in (
        (1, "Square_matrix_multiplication_"),
        (19, "ReLU"),
        (23, "Softmax"),
        (40, "LayerNorm"),
    ):
        (level1 / f"{number}_{name}.py").write_text("class Model: pass\n")
    monkeypatch.setenv("KERNELBENCH_ROOT", str(tmp_path / "KernelBench"))
    suite = load_suite(REPO / "benchmarks" / "kernelbench.yml")
    by_name = {e.name: e for e in suite.entries}
    # the CPU suite shrinks each file's own sizes (KernelBench's published ones need a GPU)
    assert by_name["l1-softmax"].task == f"{level1 / '23_Softmax.py'}?batch_size=16&dim=16384"
    assert by_name["l1-relu"].task.startswith(f"{level1 / '19_ReLU.py'}?")
    assert by_name["l1-softmax-discover"].action == "discover"
    assert by_name["l1-softmax-discover"].settings["steps"] == 3  # suite defaults reach entries
    gpu = {e.name: e for e in load_suite(REPO / "benchmarks" / "kernelbench_gpu.yml").entries}
    assert Path(gpu["l1-relu"].task) == level1 / "19_ReLU.py"  # published sizes, as they are
    assert set(gpu) == set(by_name)


def test_a_kernelbench_entry_carries_precision_and_sizes_to_its_task(tmp_path):
    problem = REPO / "tests" / "fixtures" / "kernelbench" / "kb_sum_problem.py"
    level1 = tmp_path / "KernelBench" / "level1"
    level1.mkdir(parents=True)
    (level1 / "7_Sum.py").write_text(problem.read_text())
    suite = write_suite(
        tmp_path,
        f"entries:\n  - kernelbench: {{root: {tmp_path}, level: 1, problem: 7, precision: bf16, sizes: {{dim: 1024}}}}\n"
        "    eval: ['@reference']\n",
    )
    (entry,) = load_suite(suite).entries
    assert entry.name == "7_Sum-eval" and entry.task.endswith("7_Sum.py?precision=bf16&dim=1024")
    assert load_task(entry.task).name == "7_Sum[bf16,dim=1024]"
    typo = write_suite(
        tmp_path,
        f"entries:\n  - kernelbench: {{root: {tmp_path}, level: 1, problem: 7, size: {{dim: 3}}}}\n    eval: ['@reference']\n",
    )
    with pytest.raises(ConfigError, match="unknown kernelbench key.*size"):
        load_suite(typo)


def test_suite_errors_name_the_file_and_entry(tmp_path):
    bad = write_suite(tmp_path, "entries:\n  - task: vectoradd\n")
    with pytest.raises(ConfigError, match=r"entries\[0\].*exactly one of 'eval'"):
        load_suite(bad)
    dupes = write_suite(
        tmp_path,
        "entries:\n  - {task: vectoradd, eval: ['@reference']}\n  - {task: vectoradd, eval: ['@submission']}\n",
    )
    with pytest.raises(ConfigError, match="unique.*vectoradd-eval"):
        load_suite(dupes)
    typo = write_suite(tmp_path, "entries:\n  - {task: vectoradd, discover: {stepz: 2}}\n")
    with pytest.raises(ConfigError, match=r"entries\[0\]: unknown discover setting\(s\) stepz"):
        load_suite(typo)
    with pytest.raises(ConfigError, match="no such variable"):
        load_suite(
            write_suite(tmp_path, "entries:\n  - {task: vectoradd, eval: ['@reference']}\n"), {"x": "1"}
        )
    misspelt = write_suite(tmp_path, "entries:\n  - {task: vectoradd, eval: ['@reference'], timeout: 5}\n")
    with pytest.raises(ConfigError, match=r"entries\[0\]: unknown key\(s\) timeout \(known: .*timeout_s"):
        load_suite(misspelt)
    for bad_timeout in ("-1", "soon", "true"):
        text = f"timeout_s: {bad_timeout}\nentries:\n  - {{task: vectoradd, eval: ['@reference']}}\n"
        with pytest.raises(ConfigError, match="timeout_s must be a positive number of seconds"):
            load_suite(write_suite(tmp_path, text))


def test_timeouts_come_from_the_suite_unless_an_entry_sets_its_own(tmp_path):
    suite = load_suite(
        write_suite(
            tmp_path,
            """\
            timeout_s: 600
            entries:
              - {task: vectoradd, name: a, eval: ["@reference"]}
              - {task: vectoradd, name: b, eval: ["@reference"], timeout_s: 30}
            """,
        )
    )
    assert [e.timeout_s for e in suite.entries] == [600.0, 30.0]
    # The resolved suite the entry processes read keeps each entry's deadline.
    written = tmp_path / "resolved.yml"
    written.write_text(yaml.safe_dump(suite.to_dict(), sort_keys=False))
    assert [e.timeout_s for e in load_suite(written).entries] == [600.0, 30.0]


@pytest.mark.slow
def test_an_entry_past_its_deadline_is_stopped_and_the_suite_goes_on(tmp_path):
    """The first entry's candidate never returns; the evaluator would give up only after its
    own 180 s, the entry's 5 s deadline stops it long before, and the next entry still runs."""
    (tmp_path / "spin.py").write_text("def custom_kernel(data):\n    while True:\n        pass\n")
    (tmp_path / "torch_add.py").write_text(TORCH_VECTORADD)
    suite_file = write_suite(
        tmp_path,
        """\
        name: deadline
        device: cpu
        entries:
          - {task: vectoradd, name: stuck, eval: [spin.py], timeout_s: 5}
          - {task: vectoradd, name: fine, eval: [torch_add.py]}
        """,
    )
    out = tmp_path / "out"
    lines = []
    before = evaluator_processes()
    result = run_suite(load_suite(suite_file), out, echo=lines.append)
    status = {o["name"]: (o["status"], o.get("error")) for o in result.outcomes}
    assert status["stuck"][0] == "failed" and "deadline of 5 s" in status["stuck"][1]
    assert status["fine"] == ("done", None)
    assert (out / "entries" / "stuck" / "child.log").is_file()  # ran in a process of its own
    assert any("at most 5 s" in line for line in lines)
    # Nothing of the stopped entry is left running: every evaluator process started since is
    # this test's own (the second entry ran here), none an orphan of the stopped one.
    deadline = time.monotonic() + 30  # the orphans see their parent's death and exit
    while (leaked := evaluator_processes() - before - own_descendants()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leaked == set()


def evaluator_processes() -> set[int]:
    """Live processes of this checkout's evaluator (fork server, judges, harnesses)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except (OSError, ValueError):
            continue
        if b"zygote.main(fd)" in b" ".join(cmdline) and str(REPO).encode() in cmdline:
            if stat.rpartition(")")[2].split()[0] not in ("Z", "X"):
                found.add(int(proc.name))
    return found


def own_descendants() -> set[int]:
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            parents[int(proc.name)] = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError):
            continue
    mine, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in mine} - mine
        grew = bool(more)
        mine |= more
    return mine


@pytest.mark.slow
def test_failing_entry_is_recorded_and_the_suite_goes_on(tmp_path):
    suite_file = write_suite(
        tmp_path,
        """\
        name: mixed
        device: cpu
        entries:
          - task: no_such_task
            eval: ["@reference"]
          - task: vectoradd
            eval: ["@reference", torch_add.py, missing_kernel.py]
        """,
    )
    (tmp_path / "torch_add.py").write_text(TORCH_VECTORADD)
    out = tmp_path / "out"
    result = run_suite(load_suite(suite_file), out)

    failed = read_outcome(out, "no_such_task-eval")
    assert failed["status"] == "failed"
    assert "no_such_task" in failed["error"]
    mixed = read_outcome(out, "vectoradd-eval")
    # A missing file fails the entry but the other candidates were still evaluated.
    assert mixed["status"] == "failed" and "missing_kernel.py" in mixed["error"]
    verdicts = {v["label"]: v for v in mixed["verdicts"]}
    assert set(verdicts) == {"@reference", str(tmp_path / "torch_add.py")}
    for v in verdicts.values():
        full = json.loads((out / "entries" / "vectoradd-eval" / v["verdict_file"]).read_text())
        assert full["status"] == "ok", full["message"]
        assert full["runtime_us"] == v["runtime_us"] > 0
    reference = json.loads((out / "entries" / "vectoradd-eval" / "reference.json").read_text())
    for v in verdicts.values():
        full = json.loads((out / "entries" / "vectoradd-eval" / v["verdict_file"]).read_text())
        assert full["reference_runtime_us"] == reference["runtime_us"]  # one yardstick per entry
    assert {o["name"] for o in result.failed} == {"no_such_task-eval", "vectoradd-eval"}
    assert (out / "suite.yml").is_file() and (out / "ceilings.json").is_file()


@pytest.mark.slow
def test_resume_skips_finished_entries_and_reruns_failed_ones(tmp_path):
    suite_file = write_suite(
        tmp_path,
        """\
        name: resumable
        device: cpu
        entries:
          - task: vectoradd
            eval: ["@reference"]
          - task: vectoradd
            name: later
            eval: [kernel.py]
        """,
    )
    out = tmp_path / "out"
    first = run_suite(load_suite(suite_file), out)
    assert [o["status"] for o in first.outcomes] == ["done", "failed"]
    done_before = read_outcome(out, "vectoradd-eval")
    assert "kernel.py" in read_outcome(out, "later")["error"]

    # The missing candidate appears; a resumed suite runs only the entry that had not finished.
    (tmp_path / "kernel.py").write_text(TORCH_VECTORADD)
    with pytest.raises(ConfigError, match="--resume"):
        run_suite(load_suite(suite_file), out)
    second = run_suite(load_suite(suite_file), out, resume=True)
    assert [o["status"] for o in second.outcomes] == ["done", "done"]
    assert read_outcome(out, "vectoradd-eval") == done_before
    later_after = read_outcome(out, "later")
    assert later_after["verdicts"][0]["status"] == "ok"


@pytest.mark.slow
def test_entries_run_in_parallel_processes_one_per_gpu_slot(tmp_path):
    suite_file = write_suite(
        tmp_path,
        """\
        name: parallel
        device: cpu
        entries:
          - {task: vectoradd, name: a, eval: ["@reference"]}
          - {task: vectoradd, name: b, eval: [torch_add.py]}
          - {task: no_such_task, name: c, eval: ["@reference"]}
        """,
    )
    (tmp_path / "torch_add.py").write_text(TORCH_VECTORADD)
    out = tmp_path / "out"
    result = run_suite(load_suite(suite_file), out, gpus=["0", "1"])
    status = {o["name"]: o["status"] for o in result.outcomes}
    assert status == {"a": "done", "b": "done", "c": "failed"}
    for name in ("a", "b"):
        assert (out / "entries" / name / "child.log").is_file()  # ran in its own process
        assert read_outcome(out, name)["verdicts"][0]["runtime_us"] > 0


@pytest.mark.slow
def test_kernelbench_problem_runs_through_the_adapter(tmp_path):
    level1 = tmp_path / "KernelBench" / "KernelBench" / "level1"
    level1.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "fixtures" / "kernelbench" / "linear_relu.py", level1 / "7_linear_relu.py")
    suite_file = write_suite(
        tmp_path,
        """\
        name: kb
        device: cpu
        vars:
          kernelbench_root: {default: null, env: KERNELBENCH_ROOT}
        entries:
          - kernelbench: {root: "${kernelbench_root}", level: 1, problem: 7}
            eval: ["@reference"]
        """,
    )
    out = tmp_path / "out"
    result = run_suite(load_suite(suite_file, {"kernelbench_root": str(tmp_path / "KernelBench")}), out)
    (outcome,) = result.outcomes
    assert outcome["status"] == "done" and outcome["task"] == "7_linear_relu"
    verdict = json.loads(
        (out / "entries" / outcome["name"] / outcome["verdicts"][0]["verdict_file"]).read_text()
    )
    assert verdict["status"] == "ok", verdict["message"]
    assert "ModelNew = _reference.Model" in Path(outcome["verdicts"][0]["candidate"]).read_text()


@pytest.mark.gpu
def test_reference_suite_measures_submission_eager_and_compile_on_the_gpu(tmp_path):
    suite_file = write_suite(
        tmp_path,
        """\
        name: gpu
        device: cuda
        entries:
          - {task: vectoradd, eval: ["@submission", "@reference", "@compile"]}
        """,
    )
    result = run_suite(load_suite(suite_file), tmp_path / "out")
    (outcome,) = result.outcomes
    assert outcome["status"] == "done", outcome["error"]
    assert {v["label"]: v["status"] for v in outcome["verdicts"]} == {
        "@submission": "ok", "@reference": "ok", "@compile": "ok",
    }  # fmt: skip
