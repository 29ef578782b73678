"""From a model's reply to candidate code: extract the last Python block, then gate its format.

The gate rejects replies that cannot be a valid candidate before any evaluator time is spent
on them, and says why, so the history shows what the model got wrong.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from kerneldisc.task import Task

NO_CODE = "no ```python code block in the reply"
PYTHON_TAGS = {"python", "py", "python3"}
_OPENING = re.compile(r"^\s*```+\s*([\w+.-]*)\s*$")
_CLOSING = re.compile(r"^\s*```+\s*$")
_CUDA = re.compile(r"cuda_sources|__global__")
_LOOKS_LIKE_PYTHON = re.compile(r"^\s*(def |class |import |from \S+ import |@)", re.MULTILINE)


@dataclass
class _Block:
    tag: str
    lines: list[str]
    terminated: bool = False

    @property
    def text(self) -> str:
        body = "\n".join(self.lines).strip("\n")
        return body + "\n" if body.strip() else ""


def extract_code(completion: str) -> str | None:
    """The last ```python (or ```py) block of a reply; an unterminated final block counts.

    Without any tagged Python block, the last bare ``` block is taken if it looks like Python
    (a def, class, import or decorator line). None when the reply holds no such code.
    """
    blocks = _blocks(completion)
    for block in reversed(blocks):
        if block.tag in PYTHON_TAGS and block.text:
            return block.text
    for block in reversed(blocks):
        if block.tag == "" and block.text and _LOOKS_LIKE_PYTHON.search(block.text):
            return block.text
    return None


def format_gate(task: Task, code: str | None, require_language: bool = False) -> str | None:
    """Why `code` cannot be a candidate for `task`, or None when it passes the format checks. The
    task's kernel language is checked only with `require_language` (otherwise it is a metric,
    `language_problem`, as in the published setup: a correct reply earns its reward)."""
    if code is None or not code.strip():
        return NO_CODE
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return f"syntax error at line {exc.lineno}: {exc.msg}"
    if task.kind == "kernelbench":
        if "ModelNew" not in _top_level_names(tree, classes=True):
            return "no top-level class ModelNew (KernelBench candidates define ModelNew(nn.Module))"
    elif "custom_kernel" not in _top_level_names(tree, classes=False):
        return "no top-level function custom_kernel(data)"
    return language_problem(task, code, tree) if require_language else None


def language_problem(task: Task, code: str | None, tree: ast.Module | None = None) -> str | None:
    """Why `code` is not written in the task's kernel language (Triton: a @triton.jit kernel;
    CUDA: CUDA C++ sources for torch's extension builder), or None when it is, or the task takes
    any language."""
    if not code:
        return "no code"
    try:
        tree = tree or ast.parse(code)
    except SyntaxError:
        return "not valid Python"
    if task.language == "triton":
        return _triton_reason(tree)
    if task.language == "cuda" and not _CUDA.search(code):
        return "no CUDA C++ source (load_inline with cuda_sources)"
    return None


def _blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    for line in text.splitlines():
        if current is None:
            opening = _OPENING.match(line)
            if opening:
                current = _Block(tag=opening.group(1).lower(), lines=[])
            continue
        if _CLOSING.match(line):
            current.terminated = True
        elif line.rstrip().endswith("```"):  # "    return out```": the fence closes the last line
            current.lines.append(line.rstrip()[:-3].rstrip("`"))
            current.terminated = True
        else:
            current.lines.append(line)
            continue
        blocks.append(current)
        current = None
    if current is not None:
        blocks.append(current)
    return blocks


def _top_level_names(tree: ast.Module, classes: bool) -> set[str]:
    kinds = (ast.ClassDef,) if classes else (ast.FunctionDef, ast.AsyncFunctionDef)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, kinds):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def _triton_reason(tree: ast.Module) -> str | None:
    autotuned_without_jit = False
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        decorators = {_decorator_name(d) for d in node.decorator_list}
        if "jit" in decorators:
            return None
        autotuned_without_jit |= bool(decorators & {"autotune", "heuristics"})
    if autotuned_without_jit:
        return "@triton.autotune needs @triton.jit beneath it on the kernel"
    return "no @triton.jit kernel (Triton tasks must launch at least one @triton.jit function)"


def _decorator_name(node: ast.expr) -> str:
    """`triton.jit`, `jit`, `triton.jit(...)` and `triton.autotune(...)` by their last name."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""
