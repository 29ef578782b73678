"""The task loader: reference folders, GPU MODE's layout, and the errors a malformed folder gives."""

from __future__ import annotations

import importlib.util
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from kerneldisc.errors import TaskError
from kerneldisc.task import (
    eval_spec_expr,
    import_reference,
    list_reference_tasks,
    load_task,
    resolve_task_path,
)

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED = ("vectoradd", "softmax", "layernorm", "matmul", "trimul", "mla_decode")

GOOD_REFERENCE = """
import torch

def generate_input(size: int, seed: int, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    return scale * torch.randn(size, generator=gen)

def ref_kernel(data):
    return data * 2
"""

GOOD_YML = """
description: double every element
tests:
  - {size: 8, seed: 1}
benchmarks:
  - {size: 64, seed: 2}
ranking_by: geom
tolerances: {rtol: 1.0e-3, atol: 1.0e-3}
flops: "size"
"""


def make_task(root: Path, reference: str | None = GOOD_REFERENCE, yml: str | None = GOOD_YML) -> Path:
    folder = root / "task"
    folder.mkdir()
    if reference is not None:
        (folder / "reference.py").write_text(textwrap.dedent(reference))
    if yml is not None:
        (folder / "task.yml").write_text(textwrap.dedent(yml))
    return folder


def import_submission(task):
    spec = importlib.util.spec_from_file_location(f"_submission_{task.name}", task.submission_path)
    submission = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(submission)
    return submission


def load_error(folder: Path) -> str:
    with pytest.raises(TaskError) as info:
        load_task(folder)
    return str(info.value)


def test_all_six_reference_tasks_are_listed():
    assert set(SHIPPED) <= set(list_reference_tasks())


@pytest.mark.parametrize("name", SHIPPED)
def test_reference_task_loads_with_specs_tolerances_and_submission(name):
    task = load_task(name)
    assert task.kind == "folder" and task.name == name
    assert task.description and task.tests and task.benchmarks
    assert task.cpu_tests and task.cpu_benchmarks
    assert task.ranking_by == "geom"
    assert 0 < task.rtol <= 0.05 and 0 < task.atol <= 0.05
    assert task.submission_source is not None and "@triton.jit" in task.submission_source
    for spec in task.benchmarks:
        assert eval_spec_expr(task.flops, spec) > 0
        assert eval_spec_expr(task.bytes, spec) > 0


def test_a_valid_folder_loads_and_its_reference_imports(tmp_path):
    task = load_task(make_task(tmp_path))
    assert task.tests == [{"size": 8, "seed": 1}]
    assert task.benchmarks == [{"size": 64, "seed": 2}]
    assert (task.rtol, task.atol) == (1e-3, 1e-3)
    assert task.submission_path is None
    module = import_reference(task)
    data = module.generate_input(**task.tests[0])
    assert torch.equal(module.ref_kernel(data), data * 2)


def test_benchmarks_default_to_tests_and_ranking_aliases_are_accepted(tmp_path):
    yml = "tests:\n  - {size: 8, seed: 1}\nranking_by: geometric\n"
    task = load_task(make_task(tmp_path, yml=yml))
    assert task.benchmarks == task.tests
    assert task.ranking_by == "geom"


def test_cpu_specs_are_used_on_the_cpu_only(tmp_path):
    yml = GOOD_YML + "cpu_tests:\n  - {size: 2, seed: 3}\n"
    task = load_task(make_task(tmp_path, yml=yml))
    assert task.specs_for("cpu") == ([{"size": 2, "seed": 3}], task.benchmarks)
    assert task.specs_for("cuda") == (task.tests, task.benchmarks)


def test_missing_reference_py_is_named(tmp_path):
    folder = make_task(tmp_path, reference=None)
    message = load_error(folder)
    assert str(folder) in message and "no reference.py" in message


def test_missing_task_yml_is_named(tmp_path):
    folder = make_task(tmp_path, yml=None)
    assert "no task.yml" in load_error(folder)


def test_yaml_syntax_error_names_task_yml(tmp_path):
    folder = make_task(tmp_path, yml="tests: [ {size: 8\n")
    message = load_error(folder)
    assert str(folder / "task.yml") in message and "not valid YAML" in message


def test_tests_that_are_not_a_list_of_mappings_are_refused(tmp_path):
    folder = make_task(tmp_path, yml="tests: {size: 8, seed: 1}\n")
    message = load_error(folder)
    assert "task.yml" in message and "'tests' must be a list of mappings" in message


def test_missing_tests_are_refused(tmp_path):
    assert "missing 'tests'" in load_error(make_task(tmp_path, yml="description: nothing to run\n"))


def test_unknown_ranking_is_refused(tmp_path):
    folder = make_task(tmp_path, yml=GOOD_YML.replace("ranking_by: geom", "ranking_by: median"))
    message = load_error(folder)
    assert "ranking_by must be one of geom, mean" in message and "'median'" in message


def test_reference_without_ref_kernel_is_refused(tmp_path):
    reference = "def generate_input(size, seed):\n    return None\n"
    message = load_error(make_task(tmp_path, reference=reference))
    assert "reference.py" in message and "must define ref_kernel" in message


def test_syntax_error_in_reference_names_file_and_line(tmp_path):
    reference = "def generate_input(size, seed):\n    return (\n\ndef ref_kernel(data):\n    return data\n"
    message = load_error(make_task(tmp_path, reference=reference))
    assert "reference.py:" in message and "syntax error" in message


def test_spec_key_that_generate_input_does_not_take_is_named(tmp_path):
    folder = make_task(tmp_path, yml=GOOD_YML.replace("{size: 64, seed: 2}", "{size: 64, seed: 2, sise: 3}"))
    message = load_error(folder)
    assert "benchmarks[0] has sise" in message and "generate_input" in message


def test_spec_without_a_required_argument_is_named(tmp_path):
    folder = make_task(tmp_path, yml=GOOD_YML.replace("{size: 8, seed: 1}", "{size: 8}"))
    assert "tests[0] lacks seed" in load_error(folder)


def test_flop_expression_over_an_unknown_name_is_refused(tmp_path):
    folder = make_task(tmp_path, yml=GOOD_YML.replace('flops: "size"', 'flops: "2 * n"'))
    message = load_error(folder)
    assert "'flops' uses n" in message and "benchmarks[0]" in message


def test_baseline_figure_that_is_not_a_number_is_refused(tmp_path):
    yml = GOOD_YML + "baselines:\n  H100: {best_human_us: fast, source: somewhere}\n"
    assert "baselines.H100.best_human_us must be a positive number" in load_error(
        make_task(tmp_path, yml=yml)
    )


def test_unknown_task_name_lists_the_known_ones():
    with pytest.raises(TaskError) as info:
        resolve_task_path("no_such_task")
    assert "no_such_task" in str(info.value) and "trimul" in str(info.value)


def test_gpu_mode_layout_loads_as_it_is():
    task = load_task(FIXTURES / "gpumode_vectorsum")
    assert task.tests == [{"size": 1023, "seed": 5236}, {"size": 4096, "seed": 1001}]
    assert task.ranking_by == "geom"
    # GPU MODE's harness keys are kept, not interpreted.
    assert {"files", "lang", "config", "test_timeout"} <= set(task.extra)
    assert "Sum all elements" in task.description


def test_gpu_mode_reference_imports_its_siblings_and_checks_the_submission():
    task = load_task(FIXTURES / "gpumode_vectorsum")
    reference = import_reference(task)  # `from utils import ...`, `from task import ...`
    submission = import_submission(task)
    data = reference.generate_input(**task.tests[0])
    output = submission.custom_kernel(data)
    assert reference.check_implementation(data, output) == (True, "")
    passed, message = reference.check_implementation(data, output + 1.0)
    assert not passed and "differ" in message


def test_gpu_mode_utils_shared_from_the_parent_folder_are_imported():
    """GPU MODE's task.yml maps utils.py to ../utils.py; eval.py is listed but never imported."""
    task = load_task(FIXTURES / "gpumode_problems" / "rowmax_py")
    assert task.mapped_modules == {"utils": (FIXTURES / "gpumode_problems" / "utils.py").resolve()}
    reference = import_reference(task)
    data = reference.generate_input(**task.tests[1])
    output = import_submission(task).custom_kernel(data)
    assert reference.check_implementation(data, output) == (True, "")
    passed, message = reference.check_implementation(data, output[:-1])
    assert not passed and "shape" in message


def test_files_entry_pointing_nowhere_is_refused(tmp_path):
    reference = """
    from helpers import double

    def generate_input(seed):
        return seed

    def ref_kernel(data):
        return double(data)
    """
    yml = "files:\n  - {name: helpers.py, source: ../shared/helpers.py}\ntests:\n  - {seed: 1}\n"
    message = load_error(make_task(tmp_path, reference=reference, yml=yml))
    assert "task.yml" in message and "../shared/helpers.py" in message and "does not exist" in message


@pytest.mark.slow
def test_without_tolerances_the_tasks_own_checker_decides_alone(tmp_path):
    """rowmean's checker allows 1e-3 and imports utils inside the function: an answer 5e-4 off
    passes (allclose's default atol 1e-8 would fail it); one 1e-2 off fails with the task's words."""
    from kerneldisc.evaluate import EvalConfig, evaluate

    task = load_task(FIXTURES / "gpumode_problems" / "rowmean_py")
    assert not task.tolerances_given and "utils" in task.mapped_modules
    cfg = EvalConfig(device="cpu", timeout_s=60)
    verdicts = {}
    for name, offset in (("close", 5e-4), ("far", 1e-2)):
        path = tmp_path / f"{name}.py"
        path.write_text(f"def custom_kernel(data):\n    return data.mean(dim=1) + {offset}\n")
        verdicts[name] = evaluate(task, path, cfg)
    assert verdicts["close"].status == "ok", verdicts["close"].message
    assert (
        verdicts["far"].status == "incorrect"
        and "task check failed: largest difference" in verdicts["far"].message
    )


def test_a_checker_that_cannot_import_what_it_uses_is_the_tasks_error(tmp_path):
    from kerneldisc.evaluate import EvalConfig, evaluate

    folder = tmp_path / "broken"
    shutil.copytree(FIXTURES / "gpumode_problems" / "rowmean_py", folder)
    (folder / "task.yml").write_text(
        "tests:\n  - {rows: 2, cols: 8, seed: 1}\nbenchmarks:\n  - {rows: 2, cols: 8, seed: 2}\n"
    )
    task = load_task(folder)  # no files: mapping, so `from utils import ...` finds nothing
    with pytest.raises(TaskError, match="check_implementation failed: ModuleNotFoundError"):
        evaluate(task, folder / "submission.py", EvalConfig(device="cpu", timeout_s=60))


@pytest.mark.slow
def test_planted_bytecode_caches_are_never_run_by_the_evaluator(tmp_path):
    """A same-user candidate could write `__pycache__/*.pyc` files that Python loads without
    reading the source (unchecked hash-based pycs). The evaluator's processes compile the task's
    modules from source: a poisoned cache of the task's sibling module changes nothing."""
    import py_compile

    from kerneldisc.evaluate import EvalConfig, evaluate

    folder = tmp_path / "problems" / "rowmean_py"
    shutil.copytree(FIXTURES / "gpumode_problems" / "rowmean_py", folder)
    shutil.copy(FIXTURES / "gpumode_problems" / "utils.py", folder.parent / "utils.py")
    task = load_task(folder)
    poison = tmp_path / "poison.py"
    poison.write_text("raise RuntimeError('the planted bytecode ran')\n")
    for module in (folder / "task.py", folder / "reference.py", folder.parent / "utils.py"):
        py_compile.compile(
            str(poison),
            cfile=importlib.util.cache_from_source(str(module)),
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    v = evaluate(task, folder / "submission.py", EvalConfig(device="cpu", timeout_s=60))
    assert v.status == "ok", v.message
