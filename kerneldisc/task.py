"""Load a task — a reference folder or a KernelBench-style file — into one `Task` object.

A task folder holds `reference.py` (`generate_input(**spec)`, `ref_kernel(data)`, optional
`check_implementation(data, output)`), `task.yml` and usually `submission.py`. GPU MODE's
layout loads as it is: `reference.py` may import sibling modules (`utils.py`, `task.py`), and
tests/benchmarks are lists of spec dicts. A single Python file defining `Model`,
`get_inputs` and `get_init_inputs` is a KernelBench problem (see `kerneldisc.kernelbench`).

Loading here only reads text (YAML, source); nothing from the task is executed in the
calling process. Code runs in evaluator child processes through `import_reference`.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import yaml

from kerneldisc.errors import TaskError
from kerneldisc.task_model import (  # noqa: F401  (re-exported: where tasks are loaded is where most look)
    EXPR_BUILTINS,
    RANKINGS,
    REFERENCE_DIR,
    SourceOnlyLoader,
    Task,
    eval_spec_expr,
    exec_source_file,
    parse_source,
    read_text,
    spec_label,
    task_files,
    task_files_digest,
    top_level_names,
)


def resolve_task_path(name_or_path: str | Path) -> Path:
    """A name under reference_kernels/, a task folder, or a KernelBench file."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.exists():
        return candidate.resolve()
    if "/" not in text and (REFERENCE_DIR / text).is_dir():
        return (REFERENCE_DIR / text).resolve()
    known = ", ".join(list_reference_tasks()) or "none"
    raise TaskError(f"task '{text}' not found: not a path and not a reference task (known: {known})")


def list_reference_tasks() -> list[str]:
    if not REFERENCE_DIR.is_dir():
        return []
    return sorted(p.name for p in REFERENCE_DIR.iterdir() if (p / "reference.py").is_file())


def load_task(name_or_path: str | Path) -> Task:
    """A reference task name, a task folder, or a KernelBench file; a KernelBench file may carry
    options after `?`: `19_ReLU.py?precision=bf16&batch_size=16&dim=16384` (see docs/tasks.md)."""
    text, _, query = str(name_or_path).partition("?")
    path = resolve_task_path(text)
    if path.is_file():
        from kerneldisc.kernelbench import load_kernelbench_task, parse_options

        task = load_kernelbench_task(path, parse_options(query, path) if query else None)
    else:
        if query:
            raise TaskError(f"task '{name_or_path}': options after '?' are for KernelBench files only")
        task = _load_folder(path)
    task.files_digest = task_files_digest(task)
    return task


def _load_folder(folder: Path) -> Task:
    ref = folder / "reference.py"
    yml = folder / "task.yml"
    if not ref.is_file():
        raise TaskError(f"{folder}: no reference.py (a task folder needs reference.py and task.yml)")
    if not yml.is_file():
        raise TaskError(f"{folder}: no task.yml (a task folder needs reference.py and task.yml)")
    source = read_text(ref)
    tree = parse_source(ref, source)
    _check_reference_defines(ref, tree, ("generate_input", "ref_kernel"))
    try:
        meta = yaml.safe_load(read_text(yml)) or {}
    except yaml.YAMLError as exc:
        raise TaskError(f"{yml}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(meta, dict):
        raise TaskError(f"{yml}: expected a mapping at the top level, got {type(meta).__name__}")

    tests = _spec_list(meta, "tests", yml, required=True)
    benchmarks = _spec_list(meta, "benchmarks", yml, required=False) or tests
    cpu_tests = _spec_list(meta, "cpu_tests", yml, required=False)
    cpu_benchmarks = _spec_list(meta, "cpu_benchmarks", yml, required=False)
    _check_specs_fit(
        ref,
        tree,
        yml,
        {"tests": tests, "benchmarks": benchmarks, "cpu_tests": cpu_tests, "cpu_benchmarks": cpu_benchmarks},
    )
    ranking = str(meta.get("ranking_by", "geom")).lower()
    ranking = {"geometric": "geom", "geomean": "geom", "arithmetic": "mean"}.get(ranking, ranking)
    if ranking not in RANKINGS:
        raise TaskError(f"{yml}: ranking_by must be one of {', '.join(RANKINGS)}, got {ranking!r}")
    # Without tolerances a GPU MODE folder relies on its reference's check_implementation alone;
    # the defaults below are torch.allclose's and only apply when there is no checker.
    tol = meta.get("tolerances") or {}
    if not isinstance(tol, dict):
        raise TaskError(f"{yml}: tolerances must be a mapping like {{rtol: 1e-3, atol: 1e-3}}")
    submission = folder / "submission.py"
    known = {
        "description", "tests", "benchmarks", "ranking_by", "tolerances", "cpu_tests",
        "cpu_benchmarks", "flops", "bytes", "baselines", "language", "require_language", "name",
        "gpu_compile_targets",
    }  # fmt: skip
    require_language = meta.get("require_language", False)
    if not isinstance(require_language, bool):
        raise TaskError(f"{yml}: require_language must be true or false, got {require_language!r}")
    targets = meta.get("gpu_compile_targets") or []
    if not isinstance(targets, list):
        raise TaskError(f"{yml}: gpu_compile_targets must be a list like [sm_90, sm_100], got {targets!r}")
    for target in targets:
        if not re.fullmatch(r"sm_\d{2,3}a?", str(target)):
            raise TaskError(
                f"{yml}: gpu_compile_targets: {target!r} is not of the form sm_NN (e.g. sm_90, sm_100)"
            )
    return Task(
        name=str(meta.get("name") or folder.name),
        kind="folder",
        path=folder,
        description=str(meta.get("description") or "").strip(),
        reference_source=source,
        tests=tests,
        benchmarks=benchmarks,
        ranking_by=ranking,
        rtol=_number(tol.get("rtol", 1e-5), "tolerances.rtol", yml),
        atol=_number(tol.get("atol", 1e-8), "tolerances.atol", yml),
        tolerances_given="tolerances" in meta,
        cpu_tests=cpu_tests,
        cpu_benchmarks=cpu_benchmarks,
        flops=_optional_expr(meta, "flops", yml, benchmarks),
        bytes=_optional_expr(meta, "bytes", yml, benchmarks),
        baselines=_baselines(meta, yml),
        language=str(meta.get("language", "triton")),
        require_language=require_language,
        gpu_compile_targets=[str(t) for t in targets],
        submission_path=submission if submission.is_file() else None,
        extra={k: v for k, v in meta.items() if k not in known},
        mapped_modules=_mapped_modules(folder, meta.get("files"), tree, yml),
    )


def import_reference(task: Task) -> types.ModuleType:
    """Import a folder task's reference.py (run only inside evaluator processes).

    Every Python file of the task's folder (and each module task.yml maps in) is read once, now,
    and whatever the reference imports from them (GPU MODE's `from utils import ...`,
    `from task import input_t`, also inside functions called later) is compiled from those
    bytes: a file a candidate rewrites or plants there afterwards is never executed. Modules of
    the folder shadow installed ones of the same name, as they would with the folder first on
    sys.path; nothing is added to sys.path.
    """
    if task.kind != "folder":
        raise TaskError(f"{task.path}: import_reference is for folder tasks")
    pinned = PinnedSources(task.path, task.mapped_modules)
    for name in pinned.top_level_names():
        mod = sys.modules.get(name)
        if mod is not None and not pinned.owns(getattr(mod, "__file__", None)):
            del sys.modules[name]  # an earlier module of that name (another task's `task`, `utils`)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, PinnedSources)]
    sys.meta_path.insert(0, pinned)
    return pinned.exec_module(f"_kerneldisc_ref_{task.name}", task.path / "reference.py")


class PinnedSources(importlib.abc.MetaPathFinder):
    """An import finder over a task folder's Python files as they were when it was made."""

    MAX_FILES = 500

    def __init__(self, folder: Path, mapped: dict[str, Path]) -> None:
        self.folder = folder.resolve()
        self.sources: dict[Path, bytes] = {}
        for path in sorted(self.folder.rglob("*.py"))[: self.MAX_FILES]:
            if "__pycache__" not in path.parts and path.is_file():
                self.sources[path.resolve()] = path.read_bytes()
        self.mapped = {name: p.resolve() for name, p in mapped.items()}
        for path in self.mapped.values():
            self.sources[path] = path.read_bytes()

    def top_level_names(self) -> list[str]:
        names = set(self.mapped)
        for path in self.sources:
            if path.parent == self.folder:
                names.add(path.stem)
            elif path.name == "__init__.py" and path.parent.parent == self.folder:
                names.add(path.parent.name)
        return sorted(names)

    def owns(self, file: str | None) -> bool:
        return file is not None and Path(file).resolve() in self.sources

    def find_spec(self, fullname: str, path=None, target=None):
        last = fullname.rpartition(".")[2]
        if path is None:
            if fullname in self.mapped:
                return self._spec(fullname, self.mapped[fullname])
            roots = [self.folder]
        else:
            roots = [Path(p).resolve() for p in path]
        for root in roots:
            for file, package in ((root / last / "__init__.py", True), (root / f"{last}.py", False)):
                if file in self.sources:
                    return self._spec(fullname, file, package)
        return None

    def _spec(self, fullname: str, file: Path, package: bool = False):
        loader = _PinnedLoader(fullname, str(file), self.sources[file])
        return importlib.util.spec_from_file_location(
            fullname, file, loader=loader, submodule_search_locations=[str(file.parent)] if package else None
        )

    def exec_module(self, module_name: str, path: Path) -> types.ModuleType:
        file = path.resolve()
        if file not in self.sources:
            raise TaskError(f"{path}: not a file of the task")
        spec = self._spec(module_name, file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


class _PinnedLoader(importlib.machinery.SourceFileLoader):
    """Compiles the bytes read when the task was pinned, never the file as it is now, nor a
    bytecode cache (which a candidate running as the same user could plant)."""

    def __init__(self, fullname: str, path: str, source: bytes) -> None:
        super().__init__(fullname, path)
        self._source = source

    def get_data(self, path: str) -> bytes:
        return self._source if path == self.path else super().get_data(path)

    def get_code(self, fullname: str) -> types.CodeType:
        return compile(self._source, self.path, "exec", dont_inherit=True)


def _check_reference_defines(path: Path, tree: ast.Module, names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in top_level_names(tree)]
    if missing:
        raise TaskError(f"{path}: must define {', '.join(missing)}")


def _check_specs_fit(ref: Path, tree: ast.Module, yml: Path, lists: dict[str, list[dict]]) -> None:
    """Every spec's keys must be arguments of generate_input (unless it takes **kwargs), and
    every argument without a default must be in every spec."""
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "generate_input"), None)
    if fn is None:  # defined by assignment or import: nothing to compare statically
        return
    args = fn.args
    positional = args.posonlyargs + args.args
    names = {a.arg for a in positional + args.kwonlyargs}
    defaults = {a.arg for a in positional[len(positional) - len(args.defaults) :]}
    defaults |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
    required = names - defaults
    for key, specs in lists.items():
        for i, spec in enumerate(specs):
            unknown = sorted(set(spec) - names) if args.kwarg is None else []
            if unknown:
                raise TaskError(
                    f"{yml}: {key}[{i}] has {', '.join(unknown)}, which generate_input in {ref.name} "
                    f"does not accept (it takes {', '.join(sorted(names))})"
                )
            absent = sorted(required - set(spec))
            if absent:
                raise TaskError(f"{yml}: {key}[{i}] lacks {', '.join(absent)}, required by generate_input")


def _mapped_modules(folder: Path, files: Any, tree: ast.Module, yml: Path) -> dict[str, Path]:
    """GPU MODE's `files: [{name: utils.py, source: ../utils.py}, ...]`: the entries that
    reference.py imports and that are not already siblings, as module name -> file."""
    if not isinstance(files, list):
        return {}
    # Anywhere in the file: inside try/if blocks and functions (check_implementation) too.
    nodes = list(ast.walk(tree))
    imported = {
        alias.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
    mapped = {}
    for entry in files:
        if not isinstance(entry, dict):
            continue
        name, source = str(entry.get("name", "")), str(entry.get("source", ""))
        stem = name.removesuffix(".py")
        if stem not in imported or source.startswith("@") or (folder / name).is_file():
            continue
        path = (folder / source).resolve()
        if not path.is_file():
            raise TaskError(
                f"{yml}: files maps {name} to {source}, which does not exist (reference.py imports {stem})"
            )
        mapped[stem] = path
    return mapped


def _spec_list(meta: dict, key: str, yml: Path, required: bool) -> list[dict[str, Any]]:
    value = meta.get(key)
    if value is None:
        if required:
            raise TaskError(f"{yml}: missing '{key}' (a list of spec mappings)")
        return []
    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        raise TaskError(f"{yml}: '{key}' must be a list of mappings like {{size: 1024, seed: 1}}")
    if required and not value:
        raise TaskError(f"{yml}: '{key}' is empty")
    return [dict(s) for s in value]


def _number(value: Any, key: str, yml: Path) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TaskError(f"{yml}: {key} must be a number, got {value!r}") from None


def _optional_expr(meta: dict, key: str, yml: Path, benchmarks: list[dict[str, Any]]) -> str | None:
    """A FLOP or byte expression; every name in it must be a key of every benchmark spec."""
    value = meta.get(key)
    if value is None:
        return None
    expr = str(value)
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise TaskError(f"{yml}: '{key}' must be a Python expression over the spec, got {expr!r}") from None
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(EXPR_BUILTINS)
    for i, spec in enumerate(benchmarks):
        unknown = sorted(names - set(spec))
        if unknown:
            raise TaskError(
                f"{yml}: '{key}' uses {', '.join(unknown)}, which benchmarks[{i}] does not define "
                f"(its keys: {', '.join(spec)})"
            )
    return expr


def _baselines(meta: dict, yml: Path) -> dict[str, Any]:
    """`baselines: {GPU: {best_human_us: 1371, source: ..., ttt_discover_us: ...}}` (docs/tasks.md)."""
    value = meta.get("baselines") or {}
    if not isinstance(value, dict):
        raise TaskError(
            f"{yml}: baselines must map a GPU model to its figures, e.g. {{H100: {{best_human_us: 1371}}}}"
        )
    for gpu, entry in value.items():
        if not isinstance(entry, dict):
            raise TaskError(
                f"{yml}: baselines.{gpu} must be a mapping like {{best_human_us: 1371, source: ...}}"
            )
        for field_name, figure in entry.items():
            if str(field_name).endswith("_us") and (
                isinstance(figure, bool) or not isinstance(figure, (int, float)) or figure <= 0
            ):
                raise TaskError(
                    f"{yml}: baselines.{gpu}.{field_name} must be a positive number of µs, got {figure!r}"
                )
    return value
