"""A task as kerneldisc knows it, whichever way it was written (a folder or a KernelBench file),
and the reading of its source files (nothing from them is run here).

`kerneldisc.task` loads tasks into this type; `kerneldisc.kernelbench` loads KernelBench files.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerneldisc.errors import TaskError

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference_kernels"
RANKINGS = ("geom", "mean")


@dataclass
class Task:
    """Everything the evaluator, prompts and reports need to know about one problem."""

    name: str
    kind: str  # "folder" | "kernelbench"
    path: Path  # the folder, or the KernelBench file
    description: str
    reference_source: str
    tests: list[dict[str, Any]]
    benchmarks: list[dict[str, Any]]
    ranking_by: str = "geom"
    rtol: float = 1e-5
    atol: float = 1e-8
    # False when task.yml gives no tolerances: a reference's check_implementation then decides
    # correctness alone (GPU MODE's checkers hold their own, often looser, tolerances).
    tolerances_given: bool = True
    # Per output dtype (torch's name without "torch."): atol = rtol for tensors of that dtype,
    # rtol/atol above for the rest. KernelBench files use its per-precision tolerances.
    tolerance_by_dtype: dict[str, float] = field(default_factory=dict)
    cpu_tests: list[dict[str, Any]] = field(default_factory=list)
    cpu_benchmarks: list[dict[str, Any]] = field(default_factory=list)
    flops: str | None = None  # Python expression over the spec's keys
    bytes: str | None = None  # Python expression over the spec's keys
    baselines: dict[str, Any] = field(default_factory=dict)
    language: str = "triton"  # what candidates are asked to write: triton | cuda | any
    # Refuse (format gate) replies not in that language; by default the language is a metric and
    # any correct reply earns its reward, as published.
    require_language: bool = False
    # GPU targets its Triton kernels are compiled for on a CPU evaluation, beside the evaluator's
    # own (sm_90 by default): e.g. ["sm_100"] (see evaluate/gpu_compile.py).
    gpu_compile_targets: list[str] = field(default_factory=list)
    submission_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # task.yml keys we do not interpret
    # Modules reference.py imports from outside its folder, by module name: GPU MODE's
    # `files:` list maps e.g. utils.py to ../utils.py shared by several problems.
    mapped_modules: dict[str, Path] = field(default_factory=dict)
    # Digest of the files the reference runs from, taken at load time: the evaluator refuses a
    # reference whose files changed since (a candidate runs as the same user and could rewrite them).
    files_digest: str = ""

    def specs_for(self, device: str) -> tuple[list[dict], list[dict]]:
        """(tests, benchmarks) for a device: CPU-sized ones on the CPU when the task has them."""
        if device == "cpu":
            return (self.cpu_tests or self.tests, self.cpu_benchmarks or self.benchmarks)
        return self.tests, self.benchmarks

    @property
    def submission_source(self) -> str | None:
        if self.submission_path is None or not self.submission_path.is_file():
            return None
        return self.submission_path.read_text()


class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source every time and never reads a bytecode cache: a candidate running as the
    same user could plant a `__pycache__/*.pyc` that Python would run instead of the source the
    task's digest vouches for."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


def exec_source_file(module_name: str, path: Path) -> types.ModuleType:
    """Import one file as a module from its source (see SourceOnlyLoader)."""
    loader = SourceOnlyLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def spec_label(spec: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in spec.items())


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise TaskError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise TaskError(f"{path}: cannot read ({exc.strerror})") from None


def parse_source(path: Path, source: str) -> ast.Module:
    """The module's syntax tree; a syntax error becomes a TaskError naming file and line."""
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise TaskError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None


def top_level_names(tree: ast.Module) -> set[str]:
    """Names a module defines at its top level: functions, classes, assignments, imports."""
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    return defined


EXPR_BUILTINS = {"min": min, "max": max}


def eval_spec_expr(expr: str, spec: dict[str, Any]) -> float:
    """Evaluate a task's FLOP or byte expression for one spec (names are the spec's keys)."""
    code = compile(ast.parse(expr, mode="eval"), "<task expr>", "eval")
    return float(eval(code, {"__builtins__": EXPR_BUILTINS}, dict(spec)))


def task_files(task: Task) -> list[Path]:
    """The files a task's reference runs from: the KernelBench file, or the folder's Python and
    YAML files plus any modules task.yml maps in from elsewhere."""
    if task.kind != "folder":
        return [task.path]
    own = [
        p
        for p in task.path.iterdir()
        if p.is_file() and p.suffix in (".py", ".yml", ".yaml") and p.name != "submission.py"
    ]
    return sorted({*own, *task.mapped_modules.values()})


def task_files_digest(task: Task) -> str:
    digest = hashlib.sha256()
    for path in task_files(task):
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()
