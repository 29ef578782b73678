"""Every reference task's starting submission passes the evaluator on the CPU (interpreter)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kerneldisc.evaluate import EvalConfig, Verdict, evaluate
from kerneldisc.task import list_reference_tasks, load_task

pytestmark = pytest.mark.slow

TASKS = list_reference_tasks()


@pytest.fixture(scope="module")
def verdicts() -> dict[str, Verdict]:
    cfg = EvalConfig(device="cpu", timeout_s=120, time_budget_s=0.2)

    def one(name: str) -> tuple[str, Verdict]:
        task = load_task(name)
        return name, evaluate(task, task.submission_path, cfg)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, [t for t in TASKS if load_task(t).submission_path is not None]))


@pytest.mark.parametrize("name", TASKS)
def test_reference_submission_passes(verdicts, name):
    assert name in verdicts, f"reference task {name} has no submission.py"
    v = verdicts[name]
    assert v.status == "ok", f"{name}: {v.status}: {v.message}"
    assert all(t.passed for t in v.tests)
    assert v.runtime_us > 0 and v.reference_runtime_us > 0 and v.speedup > 0


@pytest.mark.parametrize("name", TASKS)
def test_reference_submission_compiles_for_hopper_with_registers_recorded(verdicts, name):
    """Each Triton kernel the submission launched, compiled for sm_90 with Triton's compiler on
    this CPU machine: ok, with registers, spills and shared memory from ptxas."""
    v = verdicts[name]
    source = load_task(name).submission_path.read_text()
    if "@triton.jit" not in source:
        pytest.skip(f"{name}'s submission has no Triton kernel")
    assert v.gpu_compile, f"{name}: no kernel compiled"
    for entry in v.gpu_compile:
        assert entry["target"] == "sm_90" and entry["ok"] is True, entry
        assert entry["registers"] > 0 and entry["spill_stores"] is not None and entry["shared_bytes"] >= 0
        assert entry["kernel"] in source
