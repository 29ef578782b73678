"""What runs in a harness process: the candidate's (untrusted) or the reference's (trusted, run
the same way so both sides of a speedup pay the same per-call costs).

The judge forks the process and calls `run`, which confines it before any candidate code exists
(own session and group, memory limit, one CPU, death with the judge, no capabilities, a seccomp
filter: see `confine`), imports the candidate, and then serves commands on fd 3, answering on
fd 4. Between commands the judge keeps the whole process group stopped. For a call, the harness
views the inputs the judge wrote into the arena, calls the kernel and describes where its output
lives; it computes, times, copies and compares nothing that a verdict depends on.
"""

from __future__ import annotations

import faulthandler
import gc
import importlib.util
import json
import math
import mmap
import os
import resource
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kerneldisc.evaluate.controller import ARENA_FD, CMD_FD, REPLY_FD
from kerneldisc.evaluate.sandbox import Limits

_HARNESS = os.path.dirname(os.path.abspath(__file__))
MAX_PROCESSES = 512  # processes and threads of a harness running as its own user
RAISE_LIMIT = " (raise it: `kerneldisc eval --memory-limit MB`, or eval_memory_mb in a discover config)"


@dataclass
class HarnessSpec:
    """Everything a harness process needs, decided by the judge before it forks."""

    role: str  # "candidate" | "reference"
    device: str
    core: int | None
    limits: Limits
    work_dir: str
    env: dict[str, str | None] = field(default_factory=dict)  # None: unset
    candidate_path: str | None = None
    candidate_source: str | None = None  # compiled from this text, not from the file at the path
    # Run as this user (the judge is root): the candidate can then write none of the caller's
    # files (task folders, kerneldisc's and torch's sources, run folders) and signal none of its
    # processes. None: stay the judge's user.
    uid: int | None = None
    # Keep the capability to read any file (only where Python, torch or the task would otherwise
    # be unreadable to that user: it also lets the candidate read root's files).
    keep_read: bool = True
    # A cgroup counts this process's CPU time exactly, reaped children included.
    exact_cpu: bool = False
    # On the CPU: record the candidate's Triton launches and keep a helper to compile them for a
    # GPU target (gpu_compile.py); off when the evaluation has no targets.
    gpu_compile: bool = False
    # Processes it may never signal whatever their pid (the reference's worker, for the
    # candidate); its ancestors are protected too (seccomp.install).
    protected: list[int] = field(default_factory=list)
    # The code this harness runs imports Triton (the candidate's, or the reference's own): then
    # Triton's library is switched to the interpreter before it is imported (triton_mode.py).
    uses_triton: bool = False
    # How the entry point is found: for the candidate, from its module (custom_kernel, or a
    # KernelBench ModelNew wrapper); for the reference, the reference function itself.
    entry: Callable[..., Any] | None = None


class Refused(Exception):
    """A call's outcome that ends the evaluation with a given status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def run(spec: HarnessSpec) -> None:
    """The harness process's whole life (in the forked child); never returns."""
    link = _Link()
    try:
        confine(spec, link)
        _serve(spec, link)
    except SystemExit:
        pass
    except BaseException:  # the harness's own failure: say it on stderr, the judge sees a crash
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def confine(spec: HarnessSpec, link: _Link) -> None:
    """Before any candidate code: a session and group of its own (the judge stops and kills it as
    one), death with the judge, the memory limit, one CPU, readable by the judge only through the
    descriptors it opens now, no capabilities, and the seccomp filter (seccomp.py)."""
    import kerneldisc.evaluate.seccomp as seccomp
    from kerneldisc.evaluate.sandbox import become_reader, die_with_parent, drop_capabilities, set_dumpable

    os.setsid()
    spec.limits.apply()
    if spec.core is not None:
        os.sched_setaffinity(0, {spec.core})
    if spec.uid is not None:
        # Its own user: a cap on its processes (and threads) counts this evaluation's alone.
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))
        become_reader(spec.uid, spec.keep_read)
    die_with_parent()  # after the change of user, which clears the parent-death signal
    set_dumpable(True)
    link.send({"event": "hello"})
    if (link.recv() or {}).get("op") != "proceed":
        raise SystemExit(0)
    set_dumpable(False)  # no other process of this user can now read or write this memory
    faulthandler.enable()  # a segfault leaves a Python traceback in the stderr tail
    # What it prints reaches the tails as it is printed: the process is killed, never flushed.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=True)
    os.chdir(spec.work_dir)
    for name, value in spec.env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = None  # TMPDIR may have changed: tempfile looks again
    if spec.device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(spec.device))
        torch.cuda.init()  # the driver is opened before the filter is installed
        torch.cuda.synchronize()  # the primary context exists and is current for the IPC calls
    drop_capabilities()
    # With a cgroup counting every process that ran, children the kernel reaps by itself (SIGCHLD
    # ignored) are counted too: only without one must SIGCHLD's action stay as it is.
    seccomp.install(os.getpid(), lock_sigchld=not spec.exact_cpu, protected=tuple(spec.protected))


def _serve(spec: HarnessSpec, link: _Link) -> None:
    from kerneldisc.errors import CandidateError
    from kerneldisc.evaluate.problem import MissingEntry
    from kerneldisc.evaluate.tripwire import Tripwire

    tripwire = Tripwire()
    tripwire.watch(Session, "call", "set_layout", "audit", "__init__")
    tripwire.watch(_Link, "recv", "send")
    tripwire.watch(sys.modules[__name__], "describe", "_serve", "classify", "_describe")
    if spec.device == "cpu":
        if spec.role == "candidate" and spec.gpu_compile:
            global _LAUNCHES, _HELPER
            from kerneldisc.evaluate.gpu_compile import Helper, Launches

            _HELPER = Helper()  # before Triton is switched to its interpreter (gpu_compile.py)
            _LAUNCHES = Launches()
        if spec.uses_triton:
            from kerneldisc.evaluate.triton_mode import ensure as ensure_triton_mode

            ensure_triton_mode(interpret=True)  # see triton_mode.py
        _autotune_first_config()
        if _LAUNCHES is not None:
            from kerneldisc.evaluate.gpu_compile import install_recorder

            install_recorder(_LAUNCHES)
    module = None
    try:
        if spec.role == "reference":
            kernel = spec.entry
        else:
            module = _import_candidate(spec.candidate_path, spec.candidate_source)
            kernel = spec.entry(module)
    except (MissingEntry, CandidateError) as exc:
        link.send({"event": "failed", "status": "rejected", "message": str(exc)})
        return
    except Exception as exc:
        status = "compile_error"
        link.send({"event": "failed", "status": status, "message": _describe(exc) + _memory_hint(exc)})
        return
    tampered = tripwire.check()
    if tampered:
        link.send({"event": "failed", "status": "rejected", "message": tampered})
        return
    session = Session(kernel, spec.device, tripwire)
    # Everything alive now (torch, the candidate's module) is left out of later garbage
    # collections, which would otherwise land in random calls' charged time.
    gc.freeze()
    link.send({"event": "ready", "triton_kernels": _interpreted[0]})
    while True:
        command = link.recv()
        if command is None or command.get("op") == "exit":
            return
        if command["op"] == "layout":
            session.set_layout(command["layout"])
            continue
        try:
            if command["op"] in ("gpu_compile", "gpu_launches"):
                reply = _gpu_compile(spec, module, command)
            else:
                reply = session.call(command, link) if command["op"] == "call" else session.audit()
            if isinstance(reply, bytes):
                os.write(REPLY_FD, reply)
                continue
        except Refused as exc:
            reply = {"ok": False, "status": exc.status, "message": exc.message}
        except Exception as exc:
            reply = {"ok": False, "status": classify(exc), "message": _describe(exc) + _memory_hint(exc)}
        link.send(reply)


def _fast_reply_parts():
    import torch

    names = {getattr(torch, n): n for n in ("float32", "float16", "bfloat16", "float64", "int64", "int32",
                                             "int16", "int8", "uint8", "bool", "complex64", "complex128")}  # fmt: skip
    return torch.Tensor, torch.strided, names


_Tensor, _STRIDED, _DTYPE_NAMES = _fast_reply_parts()
_FAST_REPLY = (
    '{"ok": true, "outputs": {"tree": {"t": 0}, "tensors": [{"ptr": %d, "dtype": "%s", "shape": %s, '
    '"stride": %s}]}}\n'
)


class Session:
    """The kernel, the inputs' region, and the last output (kept alive until the judge read it)."""

    def __init__(self, kernel: Callable[[Any], Any], device: str, tripwire) -> None:
        self.kernel = kernel
        self.device = device
        self.tripwire = tripwire
        self.viewer = None
        self._map: mmap.mmap | None = None
        self.last_output: Any = None
        import torch

        self._null = torch.zeros(1)

    def set_layout(self, layout: dict[str, Any]) -> None:
        import torch

        from kerneldisc.evaluate.arena import Viewer

        self.last_output = None
        if self.device.startswith("cuda"):
            from kerneldisc.evaluate.cuda_ipc import open_arena

            base = open_arena(layout["arena"])
        else:
            if self._map is None or len(self._map) != layout["size"]:
                self.viewer = None  # the old views go before their mapping does
                if self._map is not None:
                    self._map.close()
                self._map = mmap.mmap(ARENA_FD, layout["size"], prot=mmap.PROT_READ)
            with warnings.catch_warnings():  # read-only on purpose: inputs are not the kernel's to write
                warnings.simplefilter("ignore", UserWarning)
                base = torch.frombuffer(self._map, dtype=torch.uint8)
        self.viewer = Viewer(base, layout)

    def call(self, command: dict[str, Any], link: _Link) -> dict[str, Any]:
        """One call: views of the arena, "prepared", then (once the judge has written this call's
        inputs and sent one byte) the kernel and where its output lives."""
        self.last_output = None
        views = self.viewer.views() if self.viewer.writable else None
        data = self.viewer() if views is None else None
        link.send({"event": "prepared"})
        if os.read(CMD_FD, 1) != b"g":  # the judge is gone
            raise SystemExit(0)
        if views is not None:  # output buffers handed over in the inputs: copied now, charged
            data = self.viewer.with_copies(views)
        if self.device.startswith("cuda"):
            from kerneldisc.evaluate.cuda_ipc import timed_call

            out, event_us = timed_call(self.kernel, data)
        else:
            # A null call (the reference's harness only: measuring the per-call floor) hands back a
            # tensor it holds, through the same path as a kernel's output.
            out, event_us = (self._null if command.get("null") else self.kernel(data)), None
            # The common case in as few steps as possible: this runs inside the charged window, for
            # the reference as for the candidate (see docs/evaluator.md, "The handshake").
            if type(out) is _Tensor and not command.get("audit") and out.layout is _STRIDED:
                name = _DTYPE_NAMES.get(out.dtype)
                if (
                    name
                    and out.device.type == "cpu"
                    and out.is_contiguous()
                    and not out.is_conj()
                    and not out.is_neg()
                ):
                    self.last_output = (out, None)
                    return (
                        _FAST_REPLY % (out.data_ptr(), name, list(out.shape), list(out.stride()))
                    ).encode()
        kept: list = []
        self.last_output = (out, kept)  # alive until the judge has read it (the next call)
        reply = {"ok": True, "outputs": describe(out, self.device, kept)}
        if event_us is not None:
            reply["event_us"] = event_us
        if command.get("audit"):
            self._refuse(self.tripwire.check())
        return reply

    def audit(self) -> dict[str, Any]:
        self._refuse(self.tripwire.check())
        return {"ok": True, "triton_kernels": _interpreted[0]}

    @staticmethod
    def _refuse(problem: str | None) -> None:
        if problem:
            raise Refused("rejected", problem)


def describe(out: Any, device: str, keep: list | None = None) -> dict[str, Any]:
    """Where the output lives, for the judge to read: its structure, and for each tensor its
    address, dtype, shape and strides (on a GPU, the IPC handle of its allocation). A lazily
    conjugated or negated view, and any tensor that is not contiguous, is materialised first,
    here, inside the call's charged window: the judge reads plain bytes, and never does a
    layout's work (a transposition, a gather) for the kernel. Such copies are appended to
    `keep`, which must stay alive until the judge has read them."""
    import torch

    from kerneldisc.evaluate.check import output_format_problem

    problem = output_format_problem(out, device)
    if problem:
        raise Refused(*problem)
    tensors: list[dict[str, Any]] = []

    def tree(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            if obj.is_conj() or obj.is_neg() or not obj.is_contiguous():
                obj = obj.resolve_conj().resolve_neg().contiguous()
                if keep is not None:
                    keep.append(obj)
            meta = {"ptr": obj.data_ptr(), "dtype": str(obj.dtype).removeprefix("torch."),
                    "shape": list(obj.shape), "stride": list(obj.stride())}  # fmt: skip
            if obj.is_cuda:
                from kerneldisc.evaluate.cuda_ipc import share

                meta.update(share(obj))
            tensors.append(meta)
            return {"t": len(tensors) - 1}
        if isinstance(obj, (tuple, list)):
            return {type(obj).__name__: [tree(v) for v in obj]}
        if isinstance(obj, dict):
            return {"dict": [[k, tree(v)] for k, v in obj.items()]}
        if isinstance(obj, complex):
            return {"complex": [repr(obj.real), repr(obj.imag)]}
        if isinstance(obj, float) and not math.isfinite(obj):
            return {"float": repr(obj)}
        return {"s": obj}

    return {"tree": tree(out), "tensors": tensors}


def classify(exc: BaseException) -> str:
    if type(exc).__name__ == "CompilationError" or "triton.compiler" in type(exc).__module__:
        return "compile_error"
    return "crash"


_interpreted = [0]  # Triton kernels made for the interpreter (a label for the verdict, no more)
_LAUNCHES = None  # the candidate's interpreted launches (gpu_compile.Launches), on the CPU
_HELPER = None  # the child that compiles them for GPU targets (gpu_compile.Helper)
_PENDING: list = []  # the launches last reported to the judge, (key, specialisation)


def _gpu_compile(spec: HarnessSpec, module: Any, command: dict[str, Any]) -> dict[str, Any]:
    """Each Triton kernel the candidate launched, compiled for the judge's targets (on the CPU),
    or as Triton compiled it (on a GPU); see gpu_compile.py."""
    from kerneldisc.evaluate import gpu_compile

    if spec.role != "candidate" or module is None:
        return {"ok": True, "gpu_compile": []}
    if spec.device.startswith("cuda"):
        return {"ok": True, "gpu_compile": gpu_compile.compiled_on_gpu(module)}
    if _LAUNCHES is None or _HELPER is None:
        return {"ok": True, "launches": [], "gpu_compile": []}
    if command["op"] == "gpu_launches":  # what was launched since the last time, for the judge's cache
        _PENDING[:] = _LAUNCHES.pending()
        for key, _ in _PENDING:
            _LAUNCHES.compiled.add(key)
        return {"ok": True, "launches": [s for _, s in _PENDING]}
    chosen = [
        _PENDING[i][1] for i in command.get("indices", []) if isinstance(i, int) and 0 <= i < len(_PENDING)
    ]
    targets = [int(t) for t in command.get("targets", [])]
    return {
        "ok": True,
        "gpu_compile": _HELPER.compile(chosen, spec.candidate_source, spec.candidate_path, targets),
    }


def _autotune_first_config() -> None:
    """Under Triton's interpreter nothing can be benchmarked (no GPU driver), so `@triton.autotune`
    keeps only its first config, which the interpreter runs like a plain launch. Kernels made for
    the interpreter are counted, however the candidate imported Triton."""
    try:
        from triton.runtime import autotuner, interpreter
    except ImportError:
        return
    made = interpreter.InterpretedFunction.__init__

    def counted(self, *args, **kwargs):
        _interpreted[0] += 1
        made(self, *args, **kwargs)

    interpreter.InterpretedFunction.__init__ = counted
    original = autotuner.Autotuner.__init__

    def first_config_only(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.configs = list(self.configs)[:1]

    autotuner.Autotuner.__init__ = first_config_only


def _import_candidate(path: str, source: str):
    """The candidate as module `candidate`, compiled from the text the judge was given (the file
    at `path` holds the same text, for tools that read a function's source, such as Triton)."""
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_loader("candidate", loader=None, origin=path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = path
    sys.modules["candidate"] = module
    exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
    return module


def _memory_hint(exc: BaseException) -> str:
    if not _describe(exc).startswith("out of memory"):
        return ""
    return "; the candidate's memory limit may be too small for this task" + RAISE_LIMIT


def _describe(exc: BaseException) -> str:
    """The exception and the candidate's own frames of its traceback (harness frames left out)."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in text.lower() or "can't allocate" in text.lower():
        head = f"out of memory: {type(exc).__name__}: {text[:300]}"
    else:
        head = f"{type(exc).__name__}: {text[:2000]}"
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if _HARNESS not in f.filename and not f.filename.startswith("<frozen")
    ][-4:]  # fmt: skip
    lines = "".join(traceback.format_list(frames)).rstrip()
    return head + ("\n" + lines if lines else "")


class _Link:
    """The harness's side of its two pipes: JSON-line commands in on fd 3, replies out on fd 4."""

    def __init__(self) -> None:
        self._pending = b""

    def recv(self) -> dict[str, Any] | None:
        while b"\n" not in self._pending:
            chunk = os.read(CMD_FD, 1 << 16)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        while data:
            data = data[os.write(REPLY_FD, data) :]
