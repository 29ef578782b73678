"""A real GPU compiler's word on Triton kernels judged on a machine without a GPU.

Triton's interpreter runs kernels no GPU compiler would accept (a `tl.dot` with K under 16, tiles
whose shared memory exceeds the card's) and says nothing of registers or spills. Triton compiles
all the way to a Hopper cubin without a GPU, so the harness records every kernel the candidate
launches under the interpreter, with its specialisation (argument types, constexpr values,
num_warps, num_stages), and, asked by the judge, compiles each one for the target (sm_90 by
default) and reports per kernel: ok, registers per thread, spill stores and loads, shared memory,
and the compiler's error. On a GPU the same figures come from the kernels Triton really compiled.

This runs in the candidate's harness process: compiling runs code the candidate wrote
(constexpr expressions, the module's top level), so it gets the same isolation and time limit as
the rest of the candidate. What it reports is therefore the candidate's word; it catches honest
mistakes the interpreter hides and informs the model, and a candidate that lies about it gains
nothing it would not get from the interpreter alone (see docs/evaluator.md).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import sys
import traceback
from typing import Any

# Shared memory a block may use (the opt-in maximum), by compute capability.
SHARED_LIMIT = {80: 166_912, 86: 101_376, 87: 166_912, 89: 101_376, 90: 232_448, 100: 232_448, 103: 232_448,
                120: 101_376}  # fmt: skip
DEFAULT_TARGETS = ("sm_90",)
MAX_LAUNCHES = 32  # distinct specialisations compiled per evaluation (more are not recorded)
_TARGET = re.compile(r"^sm_(\d{2,3})a?$")
_OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg")
_REGISTERS = re.compile(r"Used (\d+) registers")
_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def imports_triton(source: str) -> bool:
    """Whether code imports Triton (read statically; nothing is run)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "triton" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "triton":
            return True
    return False


def parse_target(text: str) -> int:
    """`sm_90` -> 90; anything else is a ValueError naming the form expected."""
    match = _TARGET.match(str(text).strip())
    if not match:
        raise ValueError(f"GPU compile target {text!r} is not of the form sm_NN (e.g. sm_90, sm_100)")
    return int(match.group(1))


def ptxas_figures(log: str) -> dict[str, int | None]:
    """Registers, spills and stack frame from `ptxas -v` output (the first function in it)."""
    registers = _REGISTERS.search(log)
    spills = _SPILLS.search(log)
    return {
        "registers": int(registers.group(1)) if registers else None,
        "stack_bytes": int(spills.group(1)) if spills else None,
        "spill_stores": int(spills.group(2)) if spills else None,
        "spill_loads": int(spills.group(3)) if spills else None,
    }


# --- recording launches under the interpreter (in the harness) -------------------------------
_TORCH_TYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64",
                "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8",
                "bool": "i1", "float8_e4m3fn": "fp8e4nv", "float8_e5m2": "fp8e5"}  # fmt: skip


class Launches:
    """The distinct (kernel, specialisation) pairs launched so far, in first-launch order. A
    launch is keyed cheaply (the function, each argument's dtype or kind, constexpr values): this
    runs inside timed calls; the full specialisation is worked out once per new key."""

    def __init__(self) -> None:
        self.seen: dict[Any, dict[str, Any]] = {}
        self.compiled: set[Any] = set()
        self._params: dict[Any, tuple[list[str], frozenset[str]]] = {}  # fn -> (names, constexpr names)

    def record(self, fn: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        try:
            key = self._key(fn, args, kwargs)
        except Exception:  # noqa: BLE001 - an odd argument: worked out (and reported) below
            key = (id(fn), "odd", len(self.seen))
        if key in self.seen or len(self.seen) >= MAX_LAUNCHES:
            return
        try:
            spec = specialisation(fn, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - an argument the check cannot type is reported, not fatal
            spec = {"kernel": getattr(fn, "__name__", "?"), "unsupported": f"{type(exc).__name__}: {exc}"}
        spec["source"] = _function_source(fn)
        self.seen[key] = spec

    def _key(self, fn: Any, args: tuple, kwargs: dict[str, Any]) -> tuple:
        known = self._params.get(fn)
        if known is None:
            params = inspect.signature(fn).parameters
            known = (
                list(params),
                frozenset(n for n, p in params.items() if "constexpr" in str(p.annotation)),
            )
            self._params[fn] = known
        positional, names = known
        parts: list[Any] = [id(fn)]
        for i, value in enumerate(args):
            constexpr = i < len(positional) and positional[i] in names
            parts.append(repr(value) if constexpr else _kind(value))
        for name, value in sorted(kwargs.items()):
            parts.append((name, repr(value) if name in names or name in _OPTIONS else _kind(value)))
        return tuple(parts)

    def pending(self) -> list[tuple[Any, dict[str, Any]]]:
        return [(k, s) for k, s in self.seen.items() if k not in self.compiled]


def _kind(value: Any) -> Any:
    """What a launch is specialised on for a non-constexpr argument, cheaply."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return str(dtype)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    return type(value).__name__


def _function_source(fn: Any) -> dict[str, Any] | None:
    """The kernel's own source text (dedented) and where it starts, so the compiling process can
    rebuild exactly the function launched, wherever it was defined (module level, a factory)."""
    import textwrap

    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    return {"text": textwrap.dedent("".join(lines)), "line": first, "name": fn.__name__}


def specialisation(fn: Any, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What Triton specialises a launch on: each argument's type (`*fp32`, `i32`, ...), constexpr
    values, and the launch options."""
    params = inspect.signature(fn).parameters
    bound = inspect.signature(fn).bind_partial(*args, **{k: v for k, v in kwargs.items() if k in params})
    bound.apply_defaults()
    signature: dict[str, str] = {}
    constexprs: dict[str, Any] = {}
    for name, param in params.items():
        value = bound.arguments.get(name)
        annotation = param.annotation
        if "constexpr" in str(annotation) or value is None:
            signature[name] = "constexpr"
            constexprs[name] = _constexpr_value(value)
        else:
            signature[name] = _type_of(value)
    options = {k: int(kwargs[k]) for k in _OPTIONS if k in kwargs and kwargs[k] is not None}
    return {"kernel": fn.__name__, "signature": signature, "constexprs": constexprs, "options": options}


def _type_of(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        name = str(value.dtype).removeprefix("torch.")
        if name not in _TORCH_TYPES:
            raise TypeError(f"tensor of dtype {name}")
        return "*" + _TORCH_TYPES[name]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"argument of type {type(value).__name__}")


def _constexpr_value(value: Any) -> Any:
    value = getattr(value, "value", value) if type(value).__name__ == "constexpr" else value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    name = getattr(value, "name", None)  # a tl.dtype
    if isinstance(name, str) and type(value).__module__.startswith("triton"):
        return {"dtype": name}
    raise TypeError(f"constexpr of type {type(value).__name__}")


def install_recorder(launches: Launches) -> bool:
    """Record every interpreted launch (the harness calls this on the CPU before the candidate is
    imported); False when Triton is not installed."""
    try:
        from triton.runtime import interpreter
    except ImportError:
        return False
    run = interpreter.InterpretedFunction.run

    def recorded(self, *args, grid, warmup, **kwargs):
        launches.record(self.fn, args, kwargs)
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    interpreter.InterpretedFunction.run = recorded
    return True


# --- compiling them for a real target ------------------------------------------------------
class Helper:
    """A child of the candidate's harness that compiles. It is forked before the harness switches
    Triton to its interpreter (which patches `triton.language`), from a fork server that loaded
    Triton for compiling and warmed its GPU backend, so a kernel compiles in about a tenth of a
    second instead of the seconds a fresh process needs. Same user, limits, seccomp filter and
    process group as the harness: it runs the candidate's module again (with the interpreter
    off, so its `@triton.jit` functions are real JIT functions), which is candidate code."""

    def __init__(self) -> None:
        requests, self._to_child = os.pipe()
        self._from_child, replies = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the helper
            os.close(self._to_child)
            os.close(self._from_child)
            code = 0
            try:
                _serve_helper(requests, replies)
            except BaseException:  # noqa: BLE001 - whatever ends it, the harness sees no reply
                code = 1
            os._exit(code)
        os.close(requests)
        os.close(replies)

    def compile(
        self, specs: list[dict[str, Any]], source: str, path: str, targets: list[int]
    ) -> list[dict[str, Any]]:
        """Each specialisation for each target: one entry per kernel, target and specialisation."""
        if not specs or not targets:
            return []
        request = {"source": source, "path": path, "targets": targets, "launches": specs}
        results = None
        try:
            _write_line(self._to_child, request)
            results = _read_line(self._from_child)
        except OSError:
            pass
        if not isinstance(results, list):
            return [{"kernel": s["kernel"], "target": f"sm_{t}", "ok": None,
                     "error": "not compiled: the compiling process ended without a result"}
                    for s in specs for t in targets]  # fmt: skip
        return results


def cache_key(spec: dict[str, Any], arch: int) -> str | None:
    """What a compilation's result depends on: the kernel's own source text, its specialisation,
    the target and Triton's version (the module's other code only through what the kernel calls,
    which the text names). None when the kernel's source is unknown."""
    import hashlib

    import triton

    source = spec.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("text"), str):
        return None
    parts = [source["text"], spec.get("signature"), spec.get("constexprs"), spec.get("options"), arch,
             triton.__version__]  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _serve_helper(requests: int, replies: int) -> None:
    from kerneldisc.evaluate.triton_mode import ensure as ensure_triton_mode

    ensure_triton_mode(interpret=False)  # (forked before the harness switched to the interpreter)
    module: dict[str, Any] | None = None
    module_error = None
    while True:
        request = _read_line(requests)
        if request is None:
            return
        if module is None:
            try:
                module = _real_module(request["source"], request["path"])
            except BaseException as exc:  # noqa: BLE001 - candidate code: its failure is reported
                module_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                traceback.print_exc()
                module = _bare_namespace()
        _write_line(replies, [_compile_one(module, spec, arch, module_error) for spec in request["launches"]
                              for arch in request["targets"]])  # fmt: skip


def _bare_namespace() -> dict[str, Any]:
    import triton
    import triton.language as tl

    return {"__name__": "candidate", "triton": triton, "tl": tl}


def _write_line(fd: int, obj: Any) -> None:
    data = json.dumps(obj).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def _read_line(fd: int) -> Any:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return json.loads(b"".join(chunks))


def warm() -> None:
    """Compile a trivial kernel for sm_90 once (the fork server does, before any judge exists):
    the backend's start-up (its tools' versions, LLVM) is then paid once, not per evaluation."""
    import tempfile

    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    def _warm(x_ptr):
        tl.store(x_ptr + tl.arange(0, 16), tl.zeros((16,), dtype=tl.float32))

    saved = os.environ.get("TRITON_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="kerneldisc-warm-") as cache:
        os.environ["TRITON_CACHE_DIR"] = cache
        try:
            triton.compile(
                ASTSource(JITFunction(_warm), {"x_ptr": "*fp32"}, {}), target=GPUTarget("cuda", 90, 32)
            )
        finally:
            if saved is None:
                os.environ.pop("TRITON_CACHE_DIR", None)
            else:
                os.environ["TRITON_CACHE_DIR"] = saved


def _real_module(source: str, path: str) -> dict[str, Any]:
    """The candidate's module run again (interpreter off), registered as `candidate` as the
    harness registers it; its globals."""
    module = type(sys)("candidate")
    module.__file__ = path
    sys.modules["candidate"] = module
    exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    return module.__dict__


def _rebuild(module: dict[str, Any], spec: dict[str, Any]) -> tuple[Any, str | None]:
    """The launched kernel as a real JIT function: its own source text executed over the
    module's globals (a factory's kernel, or one whose name another shares, is still the one
    launched). (function, None) or (None, why not)."""
    import linecache

    from triton.runtime.jit import JITFunction

    source = spec.get("source")
    if not source:
        return None, "not compiled: the kernel's source could not be read"
    text, name = source["text"], source["name"]
    filename = f"<kerneldisc kernel {name}, line {source['line']}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace = dict(module)
    try:
        exec(compile(text, filename, "exec", dont_inherit=True), namespace)
        fn = namespace[name]
        while (
            not isinstance(fn, JITFunction)
            and isinstance(getattr(fn, "fn", None), object)
            and hasattr(fn, "fn")
        ):
            fn = fn.fn  # autotune / heuristics wrappers
        if not isinstance(fn, JITFunction):
            fn = JITFunction(fn)  # defined plain and wrapped by a call, as triton.jit(f)
    except Exception as exc:  # noqa: BLE001 - e.g. a kernel that closes over a factory's locals
        return (
            None,
            f"not compiled: the kernel could not be rebuilt without the interpreter ({type(exc).__name__}: {str(exc)[:200]})",
        )
    if list(fn.arg_names) != list(spec["signature"]):
        return None, "not compiled: the rebuilt kernel's parameters differ from the launch's"
    return fn, None


def _compile_one(
    module: dict[str, Any], spec: dict[str, Any], arch: int, module_error: str | None = None
) -> dict[str, Any]:
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    entry: dict[str, Any] = {"kernel": spec["kernel"], "target": f"sm_{arch}", "ok": False,
                             "registers": None, "spill_stores": None, "spill_loads": None,
                             "stack_bytes": None, "shared_bytes": None, "error": None}  # fmt: skip
    if "unsupported" in spec:
        entry.update(ok=None, error=f"not compiled: {spec['unsupported']}")
        return entry
    entry["specialisation"] = {"signature": spec["signature"], "constexprs": spec["constexprs"],
                               "options": spec["options"]}  # fmt: skip
    fn, why_not = _rebuild(module, spec)
    if fn is None:
        entry.update(
            ok=None,
            error=why_not
            + (f"; its module did not run without the interpreter: {module_error}" if module_error else ""),
        )
        return entry
    constexprs = {k: _dtype(v) for k, v in spec["constexprs"].items()}
    options = {k: v for k, v in spec["options"].items() if k != "maxnreg" or v}
    log = io.StringIO()
    before = knobs.nvidia.dump_ptxas_log
    knobs.nvidia.dump_ptxas_log = True  # ptxas runs with -v; its log is printed, read here
    try:
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(
                ASTSource(fn, dict(spec["signature"]), constexprs), target=GPUTarget("cuda", arch, 32),
                options=options,
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the compiler's refusal is the verdict's content
        if module_error:  # perhaps only for want of what the module would have defined
            entry.update(ok=None, error=f"not compiled: its module did not run without the interpreter ({module_error}); "
                         f"the compiler said: {_compiler_words(exc)}")  # fmt: skip
        else:
            entry["error"] = _compiler_words(exc)
        return entry
    finally:
        knobs.nvidia.dump_ptxas_log = before
    entry.update(ptxas_figures(log.getvalue()))
    shared = int(getattr(kernel.metadata, "shared", 0) or 0)
    entry["shared_bytes"] = shared
    limit = SHARED_LIMIT.get(arch)
    if limit is not None and shared > limit:
        entry["error"] = f"needs {shared} bytes of shared memory per block; sm_{arch} allows at most {limit}"
        return entry
    entry["ok"] = True
    return entry


def _dtype(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"dtype"}:
        import triton.language as tl

        return getattr(tl, value["dtype"], None) or tl.dtype(value["dtype"])
    return value


def _compiler_words(exc: BaseException) -> str:
    """The compiler's reason first, then where: Triton's CompilationError ends with the reason
    after a source excerpt; ptxas's failure carries its stderr."""
    lines = [ln.rstrip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    reason, context = lines[-1], lines[:-1]
    if len(context) > 10:
        context = context[:2] + ["..."] + context[-6:]
    return (f"{type(exc).__name__}: {reason.strip()}" + "".join("\n" + ln for ln in context))[:1500]


# --- on a GPU: what Triton really compiled -------------------------------------------------
def compiled_on_gpu(module: Any) -> list[dict[str, Any]]:
    """Registers, spills and shared memory of every kernel Triton compiled for the candidate's
    module-level JIT functions while it ran on a GPU."""
    try:
        from triton.runtime.jit import JITFunction
    except ImportError:
        return []
    results = []
    for name, obj in sorted(vars(module).items()):
        fn = obj
        while fn is not None and not isinstance(fn, JITFunction) and hasattr(fn, "fn"):
            fn = fn.fn
        if not isinstance(fn, JITFunction):
            continue
        for caches in getattr(fn, "device_caches", {}).values():
            for kernel in list(caches[0].values()):
                try:
                    kernel._init_handles()
                    target = getattr(kernel.metadata, "target", None)
                    results.append({
                        "kernel": name, "target": f"sm_{getattr(target, 'arch', '?')}", "ok": True,
                        "registers": kernel.n_regs, "spill_stores": kernel.n_spills, "spill_loads": None,
                        "stack_bytes": None, "shared_bytes": int(kernel.metadata.shared), "error": None,
                    })  # fmt: skip
                except Exception:  # noqa: BLE001,S112 - a figure we cannot read is left out
                    continue
    return results
