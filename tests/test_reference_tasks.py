"""Every shipped reference task: seeded inputs, documented outputs, and a starting candidate
that matches its reference on the CPU-sized specs (Triton interpreter, in-process).

The evaluator's own end-to-end test runs the same submissions through its sandbox; this file
pins the task files themselves.
"""

from __future__ import annotations

import importlib.util
import types
from functools import cache

import pytest
import torch

from kerneldisc.task import eval_spec_expr, import_reference, load_task

SHIPPED = ("vectoradd", "softmax", "layernorm", "matmul", "trimul", "mla_decode")
DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


def expected_outputs(name: str, s: dict) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """(shape, dtype) of each output tensor, as each task.yml documents it."""
    if name == "vectoradd":
        return [((s["n"],), DTYPES[s["dtype"]])]
    if name == "softmax":
        return [((s["rows"], s["cols"]), torch.float32)]
    if name == "layernorm":
        return [((s["rows"], s["cols"]), DTYPES[s["dtype"]])]
    if name == "matmul":
        return [((s["m"], s["n"]), DTYPES[s["dtype"]])]
    if name == "trimul":
        return [((s["bs"], s["seqlen"], s["seqlen"], s["dim"]), torch.float32)]
    if name == "mla_decode":
        latent = s.get("kv_rank", 512) + s.get("rope_dim", 64)
        return [
            ((s["batchsize"], 1, s["dim"]), torch.bfloat16),
            ((s["batchsize"], 1, latent), torch.bfloat16),
        ]
    raise AssertionError(f"no documented output for {name}")


@cache
def modules(name: str) -> tuple[types.ModuleType, types.ModuleType]:
    task = load_task(name)
    spec = importlib.util.spec_from_file_location(f"_submission_{name}", task.submission_path)
    submission = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(submission)
    return import_reference(task), submission


def tensors(obj) -> list[torch.Tensor]:
    """The tensors inside nested tuples, lists and dicts, in a stable order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in tensors(item)]
    if isinstance(obj, dict):
        return [t for key in sorted(obj) for t in tensors(obj[key])]
    return []


def same(a, b) -> bool:
    ta, tb = tensors(a), tensors(b)
    return len(ta) == len(tb) and all(
        x.shape == y.shape and torch.equal(x, y) for x, y in zip(ta, tb, strict=True)
    )


CPU_CASES = [(name, i) for name in SHIPPED for i in range(len(load_task(name).cpu_tests))]


@pytest.mark.parametrize(("name", "index"), CPU_CASES)
def test_inputs_are_determined_by_the_spec_and_differ_across_seeds(name, index):
    reference, _ = modules(name)
    spec = load_task(name).cpu_tests[index]
    first = reference.generate_input(**spec)
    assert same(first, reference.generate_input(**spec))
    assert not same(first, reference.generate_input(**{**spec, "seed": spec["seed"] + 1}))


@pytest.mark.parametrize(("name", "index"), CPU_CASES)
def test_reference_output_has_the_documented_shape_and_dtype_and_leaves_inputs_alone(name, index):
    reference, _ = modules(name)
    spec = load_task(name).cpu_tests[index]
    data = reference.generate_input(**spec)
    before = [t.clone() for t in tensors(data)]
    output = reference.ref_kernel(data)
    assert [(tuple(t.shape), t.dtype) for t in tensors(output)] == expected_outputs(name, spec)
    assert all(torch.isfinite(t.float()).all() for t in tensors(output))
    assert all(torch.equal(a, b) for a, b in zip(before, tensors(data), strict=True))


@pytest.mark.parametrize(("name", "index"), CPU_CASES)
def test_starting_submission_matches_the_reference_within_tolerance(name, index):
    task = load_task(name)
    reference, submission = modules(name)
    data = reference.generate_input(**task.cpu_tests[index])
    expected = tensors(reference.ref_kernel(data))
    got = tensors(submission.custom_kernel(data))
    assert [(t.shape, t.dtype) for t in got] == [(t.shape, t.dtype) for t in expected]
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g.float(), e.float(), rtol=task.rtol, atol=task.atol)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_starting_submission_matches_the_reference_on_the_smallest_gpu_test(name):
    """The compiled (not interpreted) Triton kernels on a published GPU shape."""
    task = load_task(name)
    reference, submission = modules(name)
    spec = min(task.tests, key=lambda s: eval_spec_expr(task.bytes, s))
    data = reference.generate_input(**spec)
    expected = tensors(reference.ref_kernel(data))
    got = tensors(submission.custom_kernel(data))
    torch.cuda.synchronize()
    assert [(t.shape, t.dtype, t.device.type) for t in got] == [(t.shape, t.dtype, "cuda") for t in expected]
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g.float(), e.float(), rtol=task.rtol, atol=task.atol)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_wrong_answer_fails_the_tolerance(name):
    """The tolerances are tight enough to catch a perturbed output on every task."""
    task = load_task(name)
    reference, _ = modules(name)
    output = tensors(reference.ref_kernel(reference.generate_input(**task.cpu_tests[0])))[0]
    perturbed = output.float() * 1.1 + 0.05
    assert not torch.allclose(perturbed, output.float(), rtol=task.rtol, atol=task.atol)


TRIMUL_TESTS = [
    (32, 1, 128, 9371, True, "normal"), (32, 1, 128, 1092, False, "normal"),
    (64, 2, 256, 2291, True, "normal"), (64, 2, 256, 210284, False, "normal"),
    (128, 1, 768, 81934, True, "normal"), (256, 1, 128, 1932, True, "normal"),
    (256, 1, 128, 10432, False, "normal"), (768, 2, 128, 731, True, "normal"),
    (1024, 1, 384, 53121, False, "normal"), (1024, 1, 768, 31, True, "normal"),
    (1024, 1, 768, 4921, False, "normal"), (32, 1, 128, 937321, True, "cauchy"),
    (64, 2, 256, 2291, True, "cauchy"), (128, 1, 768, 8134, True, "cauchy"),
    (256, 1, 128, 932, True, "cauchy"), (768, 2, 128, 31, True, "cauchy"),
    (1024, 1, 384, 5321, False, "cauchy"), (1024, 1, 768, 491, False, "cauchy"),
]  # fmt: skip
TRIMUL_BENCHMARKS = [
    (256, 2, 128, 9371, True, "normal"), (768, 1, 128, 381, True, "cauchy"),
    (256, 2, 384, 2301, False, "normal"), (512, 1, 128, 12819, True, "normal"),
    (1024, 1, 128, 381, True, "cauchy"), (768, 1, 384, 481, False, "normal"),
    (1024, 1, 384, 23291, True, "normal"),
]  # fmt: skip


def trimul_rows(specs: list[dict]) -> list[tuple]:
    assert all(s["hiddendim"] == 128 for s in specs)
    return [(s["seqlen"], s["bs"], s["dim"], s["seed"], s["nomask"], s["distribution"]) for s in specs]


def test_trimul_has_exactly_the_published_configurations():
    task = load_task("trimul")
    assert trimul_rows(task.tests) == TRIMUL_TESTS
    assert trimul_rows(task.benchmarks) == TRIMUL_BENCHMARKS
    assert (task.rtol, task.atol, task.ranking_by) == (2e-2, 2e-2, "geom")


def test_trimul_baselines_are_the_published_numbers():
    baselines = load_task("trimul").baselines
    human = {gpu: entry["best_human_us"] for gpu, entry in baselines.items()}
    ttt = {gpu: entry["ttt_discover_us"] for gpu, entry in baselines.items()}
    assert human == {"A100": 4531, "H100": 1371, "B200": 1005, "MI300X": 2462}
    assert ttt == {"A100": 2198, "H100": 1161, "B200": 905, "MI300X": 1596}
    assert all(entry["source"] and entry["ttt_discover_source"] for entry in baselines.values())


def test_mla_decode_has_the_published_configurations_and_baseline():
    task = load_task("mla_decode")
    rows = [
        (s["batchsize"], s["dim"], s["dq"], s["prefill"], s["seed"]) for s in task.tests + task.benchmarks
    ]
    assert rows == [
        (128, 7168, 1536, 128, 9247), (128, 7168, 1536, 512, 2197), (128, 7168, 1536, 1024, 9107),
        (128, 7168, 1536, 2048, 5291), (128, 7168, 1536, 4096, 9817), (128, 7168, 1536, 6144, 5291),
    ]  # fmt: skip
    assert (task.rtol, task.atol) == (2e-2, 8e-3)
    assert task.baselines["MI300X"]["best_human_us"] == 1787
