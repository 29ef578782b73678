"""The package's shape: no import cycles, layers that only look down, a caller side free of torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kerneldisc

PACKAGE = Path(kerneldisc.__file__).parent

# Each module may import only from its own layer or the ones before it (docs/architecture.md).
LAYERS = [
    ["errors", "atomic", "cache", "yaml_file", "devices", "progress", "gpus", "peft_compat"],
    ["task_model", "task", "kernelbench"],
    ["evaluate", "policy.base"],  # policy.base: the Completion and Prompt types every policy returns
    ["rollout"],
    ["search", "prompts", "learn", "policy"],
    [
        "config",
        "model_defaults",
        "run_folder",
        "step_record",
        "tracking",
        "evaluation_pool",
        "ray_cluster",
        "ray_evaluators",
        "run_context",
    ],
    ["loop", "bench", "report"],
    ["commands"],
    ["cli", "__main__"],
]


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("kerneldisc", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """Every kerneldisc import of every module, those inside functions and TYPE_CHECKING blocks too:
    a lazy import is still a dependency, and hiding a cycle behind one only moves where it breaks."""
    names = module_names()
    graph: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in names:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_of(module: str) -> int:
    """The layer of the most specific entry naming the module ("policy.base" before "policy")."""
    parts = module.split(".")[1:] or ["__init__"]
    for length in range(len(parts), 0, -1):
        for rank, layer in enumerate(LAYERS):
            if ".".join(parts[:length]) in layer:
                return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_lazy_imports():
    graph = import_graph()
    # run_context imports the policies inside a function (they pull in torch); the graph sees it.
    assert any(target.startswith("kerneldisc.policy") for target in graph["kerneldisc.run_context"])
    assert "kerneldisc.evaluate.api" in graph["kerneldisc.evaluate"]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_every_module_imports_only_its_own_layer_or_lower_ones():
    graph = import_graph()
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(graph.items())
        if module != "kerneldisc"
        for target in sorted(targets)
        if target != "kerneldisc" and layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_evaluator_caller_and_the_cli_load_without_torch():
    """The loop's side of the evaluator holds no torch: the judge and the candidate have it, and
    `kerneldisc --help` answers at once."""
    code = (
        "import sys, kerneldisc.evaluate, kerneldisc.cli\n"
        "print(sorted(m for m in ('torch', 'triton', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip() == "[]"
