"""KernelBench problems: one Python file defining `Model`, `get_inputs` and `get_init_inputs`.

Loading (`load_kernelbench_task`) only parses the file; nothing in it runs in the caller.
The runtime helpers (`make_problem`, `wrap_candidate`) run inside evaluator child processes
and turn the file into GPU MODE's shape, so the evaluator treats both task kinds alike:

- `generate_input(seed)` seeds torch, calls `get_init_inputs()` and `get_inputs()` and
  returns `data = (inputs, init_inputs)`, two tuples, tensors on the GPU when there is one.
- `ref_kernel(data)` runs `Model(*init_inputs)(*inputs)`; a candidate's `custom_kernel(data)`
  (from `wrap_candidate`) runs `ModelNew(*init_inputs)(*inputs)`.
- Both models are built right after `torch.manual_seed(WEIGHT_SEED)`, so a `ModelNew` that
  creates the same parameters in the same order (e.g. the same `nn.Linear` layers) starts
  from the same weights as `Model`.
- Models are cached per class and init-input signature: the first call for a signature
  builds the model (construction happens inside that call, which the evaluator's
  correctness tests and warm-up absorb), later calls, the timed ones, only run `forward`.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kerneldisc.errors import CandidateError, TaskError
from kerneldisc.task_model import Task, exec_source_file, parse_source, read_text, top_level_names

REQUIRED = ("Model", "get_inputs", "get_init_inputs")
WEIGHT_SEED = 42  # the seed set immediately before constructing Model and ModelNew
# Five correctness trials, as KernelBench's num_correct_trials (each run twice here, on inputs
# salted apart, see evaluate/judge.py).
TEST_SEEDS = (42, 1234, 2025, 7, 31337)
BENCHMARK_SEED = 42
# KernelBench's current harness (get_tolerance_for_precision in its src/kernelbench/eval.py):
# atol = rtol = 1e-4 for float32 outputs, 1e-2 for float16 and bfloat16. Its first releases
# checked everything at 1e-2, which passes wrong kernels (one element of a sum dropped, an fp32
# matmul computed in bf16). Each output tensor is checked at its own dtype's tolerance.
TOLERANCE_BY_DTYPE = {"float64": 1e-4, "float32": 1e-4, "float16": 1e-2, "bfloat16": 1e-2}
TOLERANCE = TOLERANCE_BY_DTYPE["float32"]

KernelBenchData = tuple[tuple[Any, ...], tuple[Any, ...]]  # (inputs, init_inputs)


PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def parse_options(query: str, path: Path) -> dict[str, Any]:
    """`precision=bf16&batch_size=16&dim=16384` -> {"precision": "bf16", "sizes": {...}}: the
    precision KernelBench's harness can cast a problem to, and values for the file's own
    module-level size names (what `get_inputs` reads), checked against the file."""
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise TaskError(f"{path}: options '{query}' are not NAME=VALUE pairs joined by '&'") from None
    source = read_text(path)
    defined = top_level_names(parse_source(path, source))
    options: dict[str, Any] = {"precision": None, "sizes": {}}
    for name, value in pairs:
        if name == "precision":
            if value not in PRECISIONS:
                raise TaskError(f"{path}: precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
            options["precision"] = value
            continue
        if name not in defined or name in REQUIRED:
            raise TaskError(
                f"{path}: option {name!r} is neither `precision` nor a module-level size of the file "
                f"(its names: {', '.join(sorted(n for n in defined if n not in REQUIRED)) or 'none'})"
            )
        try:
            number = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            number = None
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise TaskError(f"{path}: size {name}={value!r} is not a number")
        options["sizes"][name] = number
    return options


def load_kernelbench_task(path: str | Path, options: dict[str, Any] | None = None) -> Task:
    """A Task for a KernelBench file, validated statically (the file is parsed, not run).
    `options` (parse_options): a precision to cast inputs and both models to, and overrides of
    the file's module-level sizes."""
    path = Path(path).resolve()
    source = read_text(path)
    tree = parse_source(path, source)
    defined = top_level_names(tree)
    missing = [name for name in REQUIRED if name not in defined]
    if missing:
        raise TaskError(
            f"{path}: a KernelBench problem must define {', '.join(REQUIRED)}; missing: {', '.join(missing)}"
        )
    options = options or {"precision": None, "sizes": {}}
    label = [f"{k}={v}" for k, v in options["sizes"].items()]
    if options["precision"]:
        label.insert(0, options["precision"])
    return Task(
        name=path.stem + (f"[{','.join(label)}]" if label else ""),
        kind="kernelbench",
        path=path,
        description=_describe(path, tree),
        reference_source=source,
        tests=[{"seed": seed} for seed in TEST_SEEDS],
        benchmarks=[{"seed": BENCHMARK_SEED}],
        ranking_by="mean",
        rtol=TOLERANCE,
        atol=TOLERANCE,
        tolerance_by_dtype=dict(TOLERANCE_BY_DTYPE),
        extra={"kernelbench_options": options} if label else {},
        language="triton",
    )


def make_problem(
    path: str | Path, options: dict[str, Any] | None = None
) -> tuple[Callable[..., KernelBenchData], Callable[[KernelBenchData], Any]]:
    """(generate_input, ref_kernel) for the file at `path`; imports (runs) the file, then sets
    its module-level sizes from `options` and casts inputs and the model to its precision."""
    problem = _import_file(Path(path), "_kerneldisc_kernelbench_problem")
    options = options or {}
    for name, value in (options.get("sizes") or {}).items():
        setattr(problem, name, value)  # what get_inputs / get_init_inputs read
    dtype = _dtype(options.get("precision"))

    def generate_input(seed: int, device: str = "cpu") -> KernelBenchData:
        import torch

        torch.manual_seed(seed)
        init_inputs = tuple(problem.get_init_inputs())
        inputs = _cast(tuple(problem.get_inputs()), dtype)
        return _to_device(inputs, device), _to_device(init_inputs, device)

    return generate_input, _model_runner(problem.Model, dtype)


def meta_megabytes(task: Task) -> float | None:
    """What a KernelBench problem's inputs and output take, in MB, worked out without memory:
    `get_inputs`, the model and its forward run on torch's meta device (shapes only). None when
    the problem does not run there (an op without a meta kernel, data-dependent shapes)."""
    import torch

    options = task.extra.get("kernelbench_options") or {}
    try:
        problem = _import_file(Path(task.path), "_kerneldisc_kernelbench_sizes")
        for name, value in (options.get("sizes") or {}).items():
            setattr(problem, name, value)
        dtype = _dtype(options.get("precision"))
        with torch.device("meta"), torch.no_grad():
            init_inputs = tuple(problem.get_init_inputs())
            inputs = _cast(tuple(problem.get_inputs()), dtype)
            model = problem.Model(*init_inputs)
            if dtype is not None and isinstance(model, torch.nn.Module):
                model = model.to(dtype=dtype)
            output = model(*inputs)
    except Exception:  # noqa: BLE001 - no estimate: the evaluation finds out the usual way
        return None

    def nbytes(obj: Any) -> int:
        if isinstance(obj, torch.Tensor):
            return obj.numel() * obj.element_size()
        if isinstance(obj, (tuple, list)):
            return sum(nbytes(v) for v in obj)
        if isinstance(obj, dict):
            return sum(nbytes(v) for v in obj.values())
        return 0

    return (nbytes(inputs) + nbytes(output)) / 1e6


def _dtype(precision: str | None):
    import torch

    return getattr(torch, PRECISIONS[precision]) if precision else None


def _cast(values: tuple, dtype) -> tuple:
    """Floating tensors cast to `dtype` (KernelBench's precision option); the rest as they are."""
    import torch

    if dtype is None:
        return values
    return tuple(v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in values)


def wrap_candidate(
    module: types.ModuleType, precision: str | None = None
) -> Callable[[KernelBenchData], Any]:
    """`custom_kernel(data)` for a candidate module that defines `ModelNew` (cast to the task's
    precision, as the reference model is)."""
    model_new = getattr(module, "ModelNew", None)
    if not isinstance(model_new, type):
        raise CandidateError(
            "candidate defines no ModelNew class (a KernelBench candidate is a module with "
            "`class ModelNew(nn.Module)` taking Model's constructor arguments)"
        )
    return _model_runner(model_new, _dtype(precision))


def kernelbench_problem_parts(task: Task) -> tuple[Callable, Callable, Callable]:
    """(generate_input, ref_kernel, wrap_candidate) for a KernelBench task, for the evaluator."""
    options = task.extra.get("kernelbench_options") or {}
    generate_input, ref_kernel = make_problem(task.path, options)
    return generate_input, ref_kernel, lambda module: wrap_candidate(module, options.get("precision"))


def _model_runner(cls: type, dtype=None) -> Callable[[KernelBenchData], Any]:
    import torch

    models: dict[tuple, Any] = {}

    def run(data: KernelBenchData) -> Any:
        inputs, init_inputs = data
        device = _device_of(inputs)
        key = (device, _signature(init_inputs))
        model = models.get(key)
        if model is None:
            torch.manual_seed(WEIGHT_SEED)
            model = cls(*init_inputs)
            if isinstance(model, torch.nn.Module):
                model = model.to(device) if dtype is None else model.to(device=device, dtype=dtype)
            models[key] = model
        with torch.no_grad():
            return model(*inputs)

    return run


def _signature(values: Sequence[Any]) -> tuple:
    """A hashable description of init inputs: equal signatures build identical models."""
    import torch

    parts = []
    for v in values:
        if isinstance(v, torch.Tensor):
            raw = v.detach().cpu().reshape(-1).view(torch.uint8)  # any dtype, bfloat16 included
            parts.append(("tensor", tuple(v.shape), str(v.dtype), raw.numpy().tobytes()))
        elif isinstance(v, (list, tuple)):
            parts.append((type(v).__name__, _signature(v)))
        else:
            parts.append(repr(v))
    return tuple(parts)


def _device_of(inputs: Sequence[Any]) -> Any:
    import torch

    for v in inputs:
        if isinstance(v, torch.Tensor):
            return v.device
    return torch.device("cpu")  # no tensor among the inputs: the model runs where torch defaults


def _to_device(values: tuple, device: str) -> tuple:
    import torch

    return tuple(v.to(device) if isinstance(v, torch.Tensor) else v for v in values)


def _import_file(path: Path, module_name: str) -> types.ModuleType:
    return exec_source_file(module_name, path)


def _describe(path: Path, tree: ast.Module) -> str:
    """The prompt's task text: the file's own docstrings plus the candidate contract."""
    model = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model")
    methods = {n.name: n for n in model.body if isinstance(n, ast.FunctionDef)}
    docs = [d for d in (ast.get_docstring(tree), ast.get_docstring(model)) if d]
    forward_doc = ast.get_docstring(methods["forward"]) if "forward" in methods else None
    lines = [f"KernelBench problem `{path.stem}`."]
    lines += docs
    if forward_doc:
        lines.append(f"Model.forward: {forward_doc}")
    for name, label in (("__init__", "constructor"), ("forward", "forward")):
        if name in methods:
            args = [a.arg for a in methods[name].args.args[1:]]
            lines.append(f"Model {label} arguments: ({', '.join(args)})")
    lines.append(
        "Write a module defining `class ModelNew(torch.nn.Module)` with Model's constructor "
        "arguments (the values come from get_init_inputs()) whose forward takes the tensors "
        "from get_inputs() and returns what Model.forward returns, within "
        f"atol = rtol = {TOLERANCE:g} for float32 outputs ({TOLERANCE_BY_DTYPE['float16']:g} for "
        "float16 and bfloat16), as KernelBench checks. Both models are built right after "
        f"torch.manual_seed({WEIGHT_SEED}); create parameters in the same order as Model "
        "(e.g. the same nn.Linear layers) to start from the same weights. The reference "
        "source is the problem file itself."
    )
    return "\n\n".join(lines)
