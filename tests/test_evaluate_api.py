"""The library API the discovery loop calls: a reference timed once and reused, code given as
text, large speedups re-measured, and caller errors raised as KerneldiscError."""

from __future__ import annotations

from pathlib import Path

import pytest

from kerneldisc.errors import CandidateError, ConfigError
from kerneldisc.evaluate import EvalConfig, ReferenceTiming, evaluate, measure_reference
from kerneldisc.task import load_task

CANDIDATES = Path(__file__).parent / "candidates"
CFG = EvalConfig(device="cpu", timeout_s=60)


@pytest.fixture(scope="module")
def task():
    return load_task(CANDIDATES / "add_task")


@pytest.fixture(scope="module")
def reference(task) -> ReferenceTiming:
    return measure_reference(task, CFG)


def test_measure_reference_times_every_benchmark_on_the_stated_device(task, reference):
    assert reference.device == "cpu" and reference.task == "add"
    assert len(reference.benchmarks) == len(task.benchmarks)
    stats = reference.benchmarks[0].runtime
    assert stats.repeats >= 3 and stats.mean_us > 0
    assert reference.runtime_us == pytest.approx(stats.mean_us)
    assert ReferenceTiming.from_dict(reference.to_dict()) == reference


@pytest.mark.slow
def test_given_reference_is_used_for_the_speedup_and_code_text_is_accepted(task, reference):
    code = (CANDIDATES / "add_torch.py").read_text()
    v = evaluate(task, code, CFG, reference=reference)
    assert v.status == "ok", v.message
    assert v.candidate.startswith("<code ")
    assert v.reference_runtime_us == pytest.approx(reference.runtime_us)
    assert v.speedup == pytest.approx(reference.runtime_us / v.runtime_us)


@pytest.mark.slow
def test_speedup_above_the_threshold_is_re_measured(task):
    code = (CANDIDATES / "add_torch.py").read_text()
    v = evaluate(task, code, EvalConfig(device="cpu", timeout_s=60, recheck_speedup_above=0.0))
    assert v.status == "ok", v.message
    assert v.rechecked and "(re-measured)" in v.summary()


def test_missing_candidate_file_is_a_caller_error(task, tmp_path):
    with pytest.raises(CandidateError, match="does not exist"):
        evaluate(task, tmp_path / "nope.py", CFG)


def test_bad_device_string_is_a_caller_error(task):
    with pytest.raises(ConfigError, match="device must be"):
        evaluate(task, "def custom_kernel(data):\n    return data[0]\n", EvalConfig(device="tpu"))


def test_syntax_error_in_code_text_needs_no_child_process(task):
    v = evaluate(task, "def custom_kernel(data)\n", CFG)
    assert v.status == "compile_error" and "SyntaxError at line 1" in v.message
    assert [t.message for t in v.tests] == ["not run", "not run"]


def test_reference_from_a_gpu_is_refused_for_a_cpu_verdict(task, reference):
    gpu_reference = ReferenceTiming(
        task=reference.task, device="cuda:0", runtime_us=1.0, benchmarks=reference.benchmarks,
        device_facts={"device": "cuda:0", "name": "NVIDIA H100"},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="same kind of device"):
        evaluate(task, (CANDIDATES / "wrong_values.py"), CFG, reference=gpu_reference)
