"""The evaluator's pieces on their own: comparisons, aliasing and mutation checks, statistics,
CUDA source extraction, settings, signing and the verdict's round trip. The sandbox's own pieces
(seccomp, the arena, memory reads, the harness process's control) are in test_evaluate_sandbox.py."""

from __future__ import annotations

import time

import pytest
import torch

from kerneldisc.errors import ConfigError
from kerneldisc.evaluate import EvalConfig, Verdict, check
from kerneldisc.evaluate.config import parse_device
from kerneldisc.evaluate.cuda_compile import extract_cuda_sources, uses_cuda_extension
from kerneldisc.evaluate.problem import salted_seed
from kerneldisc.evaluate.protocol import rel_stderr
from kerneldisc.evaluate.verdict import ReferenceTiming, RuntimeStats, TestResult, aggregate


def test_compare_accepts_values_within_tolerance():
    ref = torch.tensor([1.0, 2.0, 3.0])
    assert check.compare(ref + 1e-7, ref, rtol=1e-5, atol=1e-6) is None


def test_compare_names_the_first_mismatch_and_the_worst_error():
    ref = torch.tensor([1.0, 2.0, 3.0])
    out = torch.tensor([1.0, 2.5, 3.0])
    message = check.compare(out, ref, rtol=1e-5, atol=1e-6)
    assert "1 of 3 elements" in message and "first at [1]" in message and "max abs error 0.5" in message


def test_compare_reports_shape_dtype_and_nan_problems():
    ref = torch.zeros(4)
    assert "shape mismatch" in check.compare(torch.zeros(5), ref, 1e-5, 1e-6)
    assert "dtype mismatch" in check.compare(torch.zeros(4, dtype=torch.float16), ref, 1e-5, 1e-6)
    assert "NaN/Inf in 1 of 4" in check.compare(torch.tensor([0.0, float("inf"), 0.0, 0.0]), ref, 1e-5, 1e-6)


def test_compare_walks_tuples_and_names_the_item():
    ref = (torch.zeros(2), torch.ones(3))
    assert check.compare((torch.zeros(2), torch.ones(3)), ref, 1e-5, 1e-6) is None
    assert check.compare((torch.zeros(2), torch.zeros(3)), ref, 1e-5, 1e-6).startswith("output[1]")
    assert "expected 2 items" in check.compare((torch.zeros(2),), ref, 1e-5, 1e-6)


def test_aliasing_finds_the_input_a_view_and_a_slice_but_not_a_copy():
    a, b = torch.randn(8), torch.randn(8)
    data = (a, b)
    assert check.aliased_inputs(a, data) == ["output"]
    assert check.aliased_inputs(b.view(2, 4), data) == ["output"]
    assert check.aliased_inputs((a.clone(), b[2:5]), data) == ["[1]"]
    assert check.aliased_inputs(a + b, data) == []


def test_changed_inputs_sees_a_single_flipped_element_and_tolerates_nan():
    data = (torch.tensor([1.0, float("nan")]), torch.ones(3))
    before = check.snapshot(data)
    assert check.changed_inputs(before, data) == []
    data[1][2] = 5.0
    assert check.changed_inputs(before, data) == ["input[1]"]


def test_output_format_rejects_subclasses_and_foreign_objects():
    class Sub(torch.Tensor):
        pass

    assert check.output_format_problem(torch.zeros(2), "cpu") is None
    assert check.output_format_problem((torch.zeros(2), 3), "cpu") is None
    assert check.output_format_problem(torch.zeros(2).as_subclass(Sub), "cpu")[0] == "rejected"
    assert check.output_format_problem(object(), "cpu")[0] == "rejected"


def test_python_numbers_are_compared_with_the_tasks_tolerances():
    assert check.compare(488.64934374889515, 488.649658203125, rtol=1e-4, atol=1e-6) is None
    assert "expected 2.0" in check.compare(2.5, 2.0, rtol=1e-4, atol=1e-6)
    assert check.compare(7, 7, 0, 0) is None and check.compare("a", "a", 0, 0) is None
    assert check.compare(1 + 2j, 1 + 2.00001j, rtol=1e-4, atol=0) is None


def test_the_structure_is_compared_before_anything_is_read():
    ref = (torch.zeros(4), {"k": torch.ones(2, 3)})
    meta = (torch.empty(4, device="meta"), {"k": torch.empty(2, 3, device="meta")})
    assert check.structure_problem(meta, ref) is None
    wide = (torch.empty(4, device="meta").expand(4), {"k": torch.empty(2**29, device="meta")})
    assert "shape mismatch" in check.structure_problem(wide, ref)
    assert "expected 2 items" in check.structure_problem([torch.empty(4, device="meta")] * 3000, ref)


def test_relative_standard_error_of_the_repeat_rule():
    assert rel_stderr([5.0]) == float("inf")
    assert rel_stderr([2.0, 2.0, 2.0]) == 0.0
    assert rel_stderr([1.0, 3.0]) == pytest.approx(0.5)  # std sqrt(2), stderr 1, mean 2


def test_runtime_stats_and_rankings():
    stats = RuntimeStats.from_times([1.0, 2.0, 3.0, 4.0])
    assert stats.mean_us == 2.5 and stats.median_us == 2.5 and stats.min_us == 1.0 and stats.repeats == 4
    assert stats.stderr_us == pytest.approx(stats.std_us / 2)
    assert aggregate([1.0, 100.0], "geom") == pytest.approx(10.0)
    assert aggregate([1.0, 100.0], "mean") == pytest.approx(50.5)


def test_salted_seeds_differ_per_salt_and_repeat_and_stay_deterministic():
    spec = {"size": 8, "seed": 1}
    seeds = {salted_seed(salt, spec, "test", 0, rep) for salt in ("a", "b") for rep in (0, 1)}
    assert len(seeds) == 4
    assert salted_seed("a", spec, "test", 0, 0) == salted_seed("a", spec, "test", 0, 0)


def test_cuda_sources_are_found_through_names_lists_and_concatenation():
    source = (
        "from torch.utils.cpp_extension import load_inline\n"
        "head = '__global__ void k() {}'\n"
        "tail = '\\nvoid launch() { k<<<1, 1>>>(); }'\n"
        "src = head + tail\n"
        "m = load_inline('m', cpp_sources='', cuda_sources=[src], functions=['launch'])\n"
    )
    assert uses_cuda_extension(source)
    assert extract_cuda_sources(source) == ["__global__ void k() {}\nvoid launch() { k<<<1, 1>>>(); }"]
    assert (
        extract_cuda_sources(
            "from torch.utils.cpp_extension import load_inline\nload_inline('m', '', make())\n"
        )
        is None
    )
    assert not uses_cuda_extension("import triton\n")
    # Mentioned only in words (a comment, a docstring): a plain candidate, not a CUDA extension.
    assert not uses_cuda_extension('"""Faster than load_inline."""\n# no cpp_extension here\nx = 1\n')
    assert uses_cuda_extension('import importlib\nimportlib.import_module("torch.utils.cpp_extension")\n')


def test_device_strings_are_validated():
    assert parse_device("CUDA:1") == "cuda:1"
    for bad in ("gpu", "cuda:x", "cpu0", ""):
        with pytest.raises(ConfigError, match="device must be"):
            parse_device(bad)
    with pytest.raises(ConfigError, match="timeout"):
        EvalConfig(timeout_s=0)


def test_settings_fill_device_dependent_defaults_but_keep_explicit_ones():
    cpu = EvalConfig().resolved("cpu")
    gpu = EvalConfig(time_budget_s=5.0).resolved("cuda:0")
    assert cpu["memory_limit_mb"] and gpu["memory_limit_mb"] is None
    assert gpu["time_budget_s"] == 5.0 and gpu["max_repeats"] > cpu["max_repeats"]
    assert cpu["min_repeats"] >= 10  # few calls would leave most of them unchecked


def test_verdict_round_trips_and_only_ok_is_correct():
    v = Verdict(
        task="add", candidate="c.py", device="cpu", status="incorrect", message="bad",
        tests=[TestResult({"size": 4}, False, "bad")],
    )  # fmt: skip
    again = Verdict.from_dict(v.to_dict())
    assert again == v and not again.correct and again.to_dict()["correct"] is False
    assert again.interpreted is False and Verdict.from_dict({**v.to_dict(), "interpreted": True}).interpreted
    assert "INCORRECT" in v.summary() and "FAIL" in v.summary()
    with pytest.raises(ValueError):
        Verdict(task="t", candidate="c", device="cpu", status="great", message="")


def test_only_an_answer_signed_with_the_callers_key_is_opened():
    from kerneldisc.evaluate.signing import new_key, open_signed, sign

    key = new_key()
    answer = {"verdict": {"status": "ok", "speedup": 1.25, "message": "fine"}}
    assert open_signed(sign(answer, key), key) == answer
    assert open_signed(sign(answer, new_key()), key) is None  # another key
    assert open_signed(answer, key) is None  # a bare, unsigned answer
    tampered = sign(answer, key)
    tampered["signed"] = tampered["signed"].replace("1.25", "125.0")
    assert open_signed(tampered, key) is None


def test_bytecode_written_during_an_evaluation_is_purged_and_older_caches_are_kept(tmp_path):
    from kerneldisc.evaluate.integrity import purge_bytecode_since

    package, task = tmp_path / "pkg", tmp_path / "task"
    for cache in (package / "sub" / "__pycache__", task / "__pycache__", task / "deeper" / "__pycache__"):
        cache.mkdir(parents=True)
    old = package / "sub" / "__pycache__" / "old.cpython-311.pyc"
    old.write_bytes(b"old")
    time.sleep(0.3)
    since = time.time()
    planted = [
        package / "sub" / "__pycache__" / "mod.cpython-311.pyc",
        task / "__pycache__" / "t.cpython-311.pyc",
    ]
    deeper = task / "deeper" / "__pycache__" / "x.cpython-311.pyc"  # task folders are not searched deeper
    for path in (*planted, deeper):
        path.write_bytes(b"planted")
    assert sorted(purge_bytecode_since(since, package, [task])) == sorted(planted)
    assert not any(p.exists() for p in planted) and deeper.exists() and old.exists()


def test_a_reference_timing_keeps_its_method_and_handshake_and_reads_older_files():
    stats = RuntimeStats.from_times([10.0, 12.0])
    data = {"task": "add", "device": "cuda:0", "runtime_us": 11.0, "method": "cuda-events-2",
            "benchmarks": [{"spec": {"size": 4}, "runtime": stats.__dict__, "handshake_us": 7.5}]}  # fmt: skip
    timing = ReferenceTiming.from_dict(data)
    assert timing.method == "cuda-events-2" and timing.benchmarks[0].handshake_us == 7.5
    assert ReferenceTiming.from_dict(timing.to_dict()) == timing
    older = {k: v for k, v in data.items() if k != "method"}
    older["benchmarks"] = [{"spec": {"size": 4}, "runtime": stats.__dict__}]
    assert (
        ReferenceTiming.from_dict(older).method == ""
        and ReferenceTiming.from_dict(older).benchmarks[0].handshake_us is None
    )
