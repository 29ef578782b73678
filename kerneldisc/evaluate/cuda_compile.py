"""CUDA C++ candidates (torch.utils.cpp_extension.load_inline) on a machine without a GPU.

They cannot run here, but their CUDA sources can still be compiled: the strings passed as
`cuda_sources` are found statically (no candidate code runs) and handed to `nvcc`, so syntax
and type errors come back as `compile_error` with the compiler's own message.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

_USES_EXTENSION = re.compile(r"\bload_inline\b|\bcpp_extension\b")
# load_inline puts these in front of the CUDA sources. torch's headers cost nvcc a minute
# to parse, so they are added only when the sources use torch's C++ API.
_CUDA_HEADERS = "#include <cuda.h>\n#include <cuda_runtime.h>\n"
_TORCH_HEADER = "#include <torch/types.h>\n"
_USES_TORCH_API = re.compile(r"\b(torch|at|c10)::|\bTensor\b|<torch/|<ATen/")


@dataclass
class CompileCheck:
    ok: bool
    message: str
    # Per __global__ function: registers, spills, shared memory from ptxas -v (gpu_compile entries)
    kernels: list[dict] = field(default_factory=list)


def uses_cuda_extension(source: str) -> bool:
    """Whether the code reaches torch's C++ extension builder: by a name, an attribute, an import,
    or a string handed to a call (importlib). Comments and docstrings that mention it do not count."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return bool(_USES_EXTENSION.search(source))
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr]
        elif isinstance(node, ast.alias):
            texts = [node.name]
        elif isinstance(node, ast.ImportFrom):
            texts = [node.module or ""]
        elif isinstance(node, ast.Call):
            texts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if any(_USES_EXTENSION.search(t) for t in texts):
            return True
    return False


def extract_cuda_sources(source: str) -> list[str] | None:
    """The `cuda_sources` strings of every load_inline call, or None if one is not a literal."""
    tree = ast.parse(source)
    names: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = node.value
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _call_name(node.func) != "load_inline":
            continue
        arg = next((k.value for k in node.keywords if k.arg == "cuda_sources"), None)
        if arg is None and len(node.args) >= 3:
            arg = node.args[2]
        if arg is None:
            continue
        texts = _literal_strings(arg, names, depth=0)
        if texts is None:
            return None
        found.extend(texts)
    return found


def nvcc_check(cuda_sources: list[str], timeout_s: float = 120.0) -> CompileCheck | None:
    """Compile the sources for sm_90 (device code to a cubin; nvcc's front end checks the host
    code too), with torch's headers when they use torch's API, and read each kernel's registers,
    spills and shared memory from ptxas; None when nvcc is not installed."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    body = "\n".join(cuda_sources)
    outside = _INCLUDE_OUTSIDE.search(body)
    if outside:
        # The compiler runs in this process's stead: it may read only headers, never a file the
        # candidate names by path (/dev/zero would exhaust memory, any file could leak into errors).
        return CompileCheck(
            False, f"nvcc: {outside.group(0).strip()}: only <system> and local headers may be included"
        )
    with tempfile.TemporaryDirectory(prefix="kerneldisc-nvcc-") as tmp:
        src = os.path.join(tmp, "cuda.cu")
        torch_api = bool(_USES_TORCH_API.search(body))
        with open(src, "w") as f:
            # #line makes nvcc's messages point into the candidate's own cuda_sources text
            f.write(
                (_TORCH_HEADER if torch_api else "")
                + _CUDA_HEADERS
                + '#line 1 "cuda_sources"\n'
                + body
                + "\n"
            )
        cmd = [
            nvcc,
            "-arch=sm_90",
            "-std=c++17",
            "-cubin",
            "-Xptxas",
            "-v",
            src,
            "-o",
            os.path.join(tmp, "cuda.cubin"),
        ]
        for path in _torch_include_paths() if torch_api else []:
            cmd += ["-I", path]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, cwd=tmp, stdin=subprocess.DEVNULL,
                preexec_fn=_compiler_limits,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return CompileCheck(False, f"nvcc did not finish within {timeout_s:.0f} s")
    if done.returncode == 0:
        return CompileCheck(True, "", ptxas_kernels(done.stderr + done.stdout))
    text = (done.stderr + done.stdout).replace(src, "cuda.cu")
    errors = [line for line in text.splitlines() if "error" in line]
    return CompileCheck(False, "nvcc: " + "\n".join(errors[:20] or text.splitlines()[-20:]))


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for 'sm_(\d+)a?'")
_SMEM = re.compile(r"(\d+) bytes smem")


def ptxas_kernels(log: str) -> list[dict]:
    """One gpu_compile entry per __global__ function in a `ptxas -v` log."""
    from kerneldisc.evaluate.gpu_compile import ptxas_figures

    parts = _ENTRY.split(log)
    names = _demangle(parts[1::3])
    kernels = []
    for name, arch, text in zip(names, parts[2::3], parts[3::3], strict=True):
        shared = _SMEM.search(text)
        kernels.append({"kernel": name, "target": f"sm_{arch}", "ok": True, **ptxas_figures(text),
                        "shared_bytes": int(shared.group(1)) if shared else 0, "error": None})  # fmt: skip
    return kernels


def _demangle(names: list[str]) -> list[str]:
    """C++ names as written (add_kernel(float const*, ...)), where a demangler is installed."""
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if not names or tool is None:
        return names
    try:
        done = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return names
    out = done.stdout.splitlines()
    return out if done.returncode == 0 and len(out) == len(names) else names


# An #include of an absolute path, of a path that climbs out (..), or of anything under /dev, /proc.
_INCLUDE_OUTSIDE = re.compile(r'^\s*#\s*include\s*[<"]\s*(/|[^>"]*\.\.)[^>"]*[>"]', re.MULTILINE)
_COMPILER_MEMORY = 8 << 30
_COMPILER_CPU_S = 300


def _compiler_limits() -> None:
    """nvcc's limits, set in the child before exec: memory and CPU time bounded, no core file."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_COMPILER_MEMORY, _COMPILER_MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (_COMPILER_CPU_S, _COMPILER_CPU_S))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _torch_include_paths() -> list[str]:
    """torch's C++ headers without importing torch (what cpp_extension.include_paths() returns)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = os.path.join(list(spec.submodule_search_locations)[0], "include")
    return [p for p in (root, os.path.join(root, "torch", "csrc", "api", "include")) if os.path.isdir(p)]


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _literal_strings(node: ast.expr, names: dict[str, ast.expr], depth: int) -> list[str] | None:
    if depth > 10:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple)):
        parts = [_literal_strings(e, names, depth + 1) for e in node.elts]
        return None if any(p is None for p in parts) else [s for p in parts for s in p]
    if isinstance(node, ast.Name) and node.id in names:
        return _literal_strings(names[node.id], names, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _literal_strings(node.left, names, depth + 1)
        right = _literal_strings(node.right, names, depth + 1)
        if left is None or right is None or len(left) != 1 or len(right) != 1:
            return None
        return [left[0] + right[0]]
    return None
