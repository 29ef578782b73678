"""KernelBench problems as tasks: static loading, seeded inputs, shared weights, model caching."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest
import torch

from kerneldisc.errors import CandidateError, TaskError
from kerneldisc.kernelbench import (
    TEST_SEEDS,
    kernelbench_problem_parts,
    load_kernelbench_task,
    make_problem,
    wrap_candidate,
)
from kerneldisc.task import load_task

FIXTURES = Path(__file__).parent / "fixtures" / "kernelbench"
PROBLEM = FIXTURES / "linear_relu.py"


def import_fixture(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"_kb_{name}", FIXTURES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_kernelbench_file_loads_as_a_task():
    task = load_task(PROBLEM)  # a file path dispatches to the KernelBench loader
    assert task.kind == "kernelbench" and task.name == "linear_relu"
    assert task.tests == [{"seed": s} for s in TEST_SEEDS] and len(task.tests) == 5
    assert task.benchmarks and all("seed" in s for s in task.benchmarks)
    # KernelBench's current tolerances: 1e-4 for float32 outputs, 1e-2 for 16-bit ones
    assert (task.ranking_by, task.rtol, task.atol) == ("mean", 1e-4, 1e-4)
    assert task.tolerance_by_dtype == {"float64": 1e-4, "float32": 1e-4, "float16": 1e-2, "bfloat16": 1e-2}
    assert task.reference_source == PROBLEM.read_text()


def test_description_carries_the_docstrings_and_the_candidate_contract():
    description = load_kernelbench_task(PROBLEM).description
    assert "A fully connected layer followed by ReLU" in description
    assert "y = relu(x @ W^T + b)." in description
    assert "(in_features, out_features)" in description
    assert "ModelNew" in description


@pytest.mark.parametrize("missing", ["Model", "get_inputs", "get_init_inputs"])
def test_a_missing_piece_is_named(tmp_path, missing):
    source = PROBLEM.read_text()
    renamed = {
        "Model": ("class Model(", "class Net("),
        "get_inputs": ("def get_inputs(", "def make_inputs("),
        "get_init_inputs": ("def get_init_inputs(", "def make_init_inputs("),
    }[missing]
    path = tmp_path / "problem.py"
    path.write_text(source.replace(*renamed))
    with pytest.raises(TaskError) as info:
        load_kernelbench_task(path)
    assert str(path) in str(info.value) and f"missing: {missing}" in str(info.value)


def test_a_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import torch\n\nclass Model(torch.nn.Module:\n    pass\n")
    with pytest.raises(TaskError, match=r"broken.py:3: syntax error"):
        load_kernelbench_task(path)


def test_inputs_are_seeded_and_carry_the_init_inputs():
    generate_input, _ = make_problem(PROBLEM)
    inputs, init_inputs = generate_input(seed=42)
    assert init_inputs == (32, 16)
    assert len(inputs) == 1 and inputs[0].shape == (8, 32)
    again, _ = generate_input(seed=42)
    other, _ = generate_input(seed=43)
    assert torch.equal(inputs[0], again[0])
    assert not torch.equal(inputs[0], other[0])


def test_correct_candidate_gets_the_same_weights_and_matches_exactly():
    generate_input, ref_kernel = make_problem(PROBLEM)
    custom_kernel = wrap_candidate(import_fixture("linear_relu_new_correct"))
    for seed in TEST_SEEDS:
        data = generate_input(seed=seed)
        expected = ref_kernel(data)
        assert (expected > 0).any() and (expected == 0).any()  # the ReLU is exercised
        # Same layers built after the same seed: identical weights, identical outputs.
        assert torch.equal(custom_kernel(data), expected)


def test_incorrect_candidate_fails_the_kernelbench_tolerance():
    task = load_kernelbench_task(PROBLEM)
    generate_input, ref_kernel = make_problem(PROBLEM)
    custom_kernel = wrap_candidate(import_fixture("linear_relu_new_wrong"))
    data = generate_input(seed=TEST_SEEDS[0])
    assert not torch.allclose(custom_kernel(data), ref_kernel(data), rtol=task.rtol, atol=task.atol)


def test_models_are_built_once_per_init_signature():
    generate_input, _ = make_problem(PROBLEM)
    candidate = import_fixture("linear_relu_new_correct")
    custom_kernel = wrap_candidate(candidate)
    for seed in (1, 2, 3):
        custom_kernel(generate_input(seed=seed))
    assert candidate.constructed == 1
    inputs, _ = generate_input(seed=1)
    assert custom_kernel((inputs, (32, 4))).shape == (8, 4)  # new init inputs: a new model
    assert candidate.constructed == 2


def test_a_candidate_without_model_new_is_refused():
    with pytest.raises(CandidateError, match="ModelNew"):
        wrap_candidate(types.ModuleType("empty_candidate"))


def test_the_evaluator_gets_all_three_parts_from_the_task():
    generate_input, ref_kernel, wrap = kernelbench_problem_parts(load_kernelbench_task(PROBLEM))
    data = generate_input(seed=7)
    assert torch.equal(wrap(import_fixture("linear_relu_new_correct"))(data), ref_kernel(data))


def test_each_output_is_checked_at_its_precisions_tolerance():
    from kerneldisc.evaluate.check import compare

    by_dtype = load_kernelbench_task(PROBLEM).tolerance_by_dtype
    ref = torch.full((4,), 10.0)
    off = ref * (1 + 3e-3)  # three parts in a thousand: a 16-bit result, not a float32 one
    assert "rtol=0.0001" in compare(off, ref, 1e-4, 1e-4, by_dtype=by_dtype)
    assert compare(off.bfloat16(), ref.bfloat16(), 1e-4, 1e-4, by_dtype=by_dtype) is None
    both = compare((off, off.half()), (ref, ref.half()), 1e-4, 1e-4, by_dtype=by_dtype)
    assert both.startswith("output[0]")  # the float32 leaf fails, the float16 one passes


@pytest.mark.slow
def test_a_float32_kernel_off_by_a_dropped_element_is_incorrect_and_a_16_bit_one_is_judged_at_1e_2():
    from kerneldisc.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(device="cpu", timeout_s=120, time_budget_s=0.1)
    fp32 = load_task(FIXTURES / "kb_sum_problem.py")
    wrong = evaluate(fp32, FIXTURES / "kb_sum_drops_one.py", cfg)
    assert wrong.status == "incorrect" and "rtol=0.0001" in wrong.message, wrong.message
    assert evaluate(fp32, FIXTURES / "kb_sum_honest.py", cfg).status == "ok"
    bf16 = evaluate(load_task(FIXTURES / "kb_sum_bf16_problem.py"), FIXTURES / "kb_sum_honest.py", cfg)
    assert bf16.status == "ok", bf16.message


def test_options_set_the_precision_and_the_files_own_sizes():
    """`file.py?precision=bf16&dim=1024`: KernelBench's precision option (inputs and both models
    cast) and the file's module-level sizes overridden, the way a CPU-sized suite runs it."""
    task = load_task(f"{FIXTURES / 'kb_sum_problem.py'}?precision=bf16&dim=1024")
    assert task.name == "kb_sum_problem[bf16,dim=1024]" and task.path == FIXTURES / "kb_sum_problem.py"
    generate_input, ref_kernel, wrap = kernelbench_problem_parts(task)
    data = generate_input(seed=TEST_SEEDS[0])
    (x,), _ = data
    assert x.dtype == torch.bfloat16 and tuple(x.shape) == (16, 1024)
    assert ref_kernel(data).dtype == torch.bfloat16
    candidate = wrap(import_fixture("kb_sum_honest"))
    assert torch.allclose(candidate(data).float(), ref_kernel(data).float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "query, message",
    [
        ("precision=fp8", "precision must be one of fp32, fp16, bf16"),
        ("batch=3", "neither `precision` nor a module-level size of the file .*batch_size, dim"),
        ("dim=large", "dim='large' is not a number"),
        ("dim", "not NAME=VALUE pairs"),
    ],
)
def test_bad_options_are_named(query, message):
    with pytest.raises(TaskError, match=message):
        load_task(f"{FIXTURES / 'kb_sum_problem.py'}?{query}")


def test_options_are_for_kernelbench_files_only():
    with pytest.raises(TaskError, match="for KernelBench files only"):
        load_task("vectoradd?precision=bf16")


@pytest.mark.slow
def test_a_smaller_size_still_judges_right_and_wrong():
    from kerneldisc.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(device="cpu", timeout_s=120, time_budget_s=0.1)
    small = load_task(f"{FIXTURES / 'kb_sum_problem.py'}?dim=1024")
    assert evaluate(small, FIXTURES / "kb_sum_honest.py", cfg).status == "ok"
    assert evaluate(small, FIXTURES / "kb_sum_drops_one.py", cfg).status == "incorrect"


@pytest.mark.slow
def test_kernelbench_sizes_beyond_this_machine_are_refused_before_anything_runs():
    """A KernelBench file has no byte expression: its sizes are worked out on the meta device."""
    from kerneldisc.errors import ConfigError
    from kerneldisc.evaluate import EvalConfig, evaluate

    huge = load_task(f"{FIXTURES / 'kb_sum_problem.py'}?dim=1000000000")  # 64 GB of input
    with pytest.raises(TaskError, match=r"takes about 64,000 MB .*meta device.*MB available.*NAME=VALUE"):
        evaluate(huge, FIXTURES / "kb_sum_honest.py", EvalConfig(device="cpu"))
    large = load_task(f"{FIXTURES / 'kb_sum_problem.py'}?dim=20000000")  # 1.28 GB
    with pytest.raises(ConfigError, match="memory limit of 1024 MB: raise it"):
        evaluate(large, FIXTURES / "kb_sum_honest.py", EvalConfig(device="cpu", memory_limit_mb=1024))
