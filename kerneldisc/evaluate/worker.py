"""Entry point of the candidate's child process (`python -m kerneldisc.evaluate.worker`).

Untrusted code runs only here. The child imports the task's input generator (never sees a
reference output), captures clocks and threads, imports the candidate, then serves commands
from the judge on a private pipe: `test` (one call on fresh inputs, output saved for the
judge to compare), `bench` (the timing protocol) and `exit`. Replies go out on a second
private pipe, never stdout, so the candidate's prints cannot pose as results.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib.util
import os
import sys
import time
import traceback
from typing import Any

from kerneldisc.evaluate.sandbox import ParentLink, drop_capabilities, not_dumpable

_HARNESS = os.path.dirname(os.path.abspath(__file__))
_sleep = time.sleep  # captured before the candidate is imported: it cannot shorten the waits below
# After a test call or a re-checked timed call, how long the output must stay unchanged and any
# thread the candidate's call left alive must stay off the CPU (only waited when such a thread
# exists; otherwise the output is compared again after STABILITY_MIN_S).
STABILITY_WINDOW_S = 0.025
STABILITY_MIN_S = 0.002
WIDE_CHECK_EVERY = 16  # timed calls between two checks of torch's sealed tables (see _seal_harness)
RAISE_LIMIT = " (raise it: `kerneldisc eval --memory-limit MB`, or eval_memory_mb in a discover config)"


class Refused(Exception):
    """A call's outcome that ends the evaluation with a given status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cmd-fd", type=int, required=True)
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--candidate", required=True)
    # The task's own reference as the kernel: the judge times it through this same harness, so
    # both sides of a speedup pay the same per-call costs (trusted code: not dumpable).
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--device", required=True)
    args = parser.parse_args(argv)
    faulthandler.enable()  # a segfault leaves a Python traceback in the stderr tail
    channel = ParentLink(args.cmd_fd, args.reply_fd)

    import torch

    # Everything the harness uses is imported (and the clocks captured) before the candidate is.
    from kerneldisc.errors import CandidateError
    from kerneldisc.evaluate import check, protocol, timing, transfer  # noqa: F401
    from kerneldisc.evaluate.guards import Guards
    from kerneldisc.evaluate.problem import MissingEntry, load_problem, read_task

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        channel.send({"event": "no_cuda"})
        return 0
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # launches and "cuda" tensors go to this GPU
    problem = load_problem(read_task(args.task))
    guards = Guards.capture(
        cuda=device.startswith("cuda"), candidate_dir=os.path.dirname(os.path.abspath(args.candidate))
    )
    guards.seal, guards.wide_seal = _seal_harness(problem, str(read_task(args.task).path))
    if device.startswith("cuda"):
        torch.cuda.init()  # the driver is opened with the process's full rights, before they go
    drop_capabilities()  # as root, the candidate could otherwise ptrace its judge
    if args.reference:
        not_dumpable()
    try:
        if args.reference:
            kernel = problem.ref_kernel
        else:
            module = _import_candidate(args.candidate)
            kernel = problem.candidate_entry(module)
    except (MissingEntry, CandidateError) as exc:
        channel.send({"event": "failed", "status": "rejected", "message": str(exc)})
        return 0
    except Exception as exc:
        channel.send({"event": "failed", "status": "compile_error", "message": _describe(exc)})
        return 0
    tampered = guards.tampered()
    if tampered:
        channel.send({"event": "failed", "status": "rejected", "message": tampered})
        return 0
    session = Session(problem, kernel, guards, device, channel)
    # The live objects the checks run through; their attributes may not change from here on.
    guards.seal.add_object("session", session, skip=("last_output_bytes",))
    guards.seal.add_object("guards", guards, skip=("marks",))
    guards.seal.add_object("channel", channel)
    guards.seal.add_object("problem", problem)
    channel.send({"event": "ready"})
    while True:
        command = channel.recv()
        if command is None or command.get("op") == "exit":
            return 0
        handler = session.test if command["op"] == "test" else session.bench
        try:
            reply = handler(command)
        except Refused as exc:
            reply = {"ok": False, "status": exc.status, "message": exc.message}
        except Exception as exc:
            reply = {
                "ok": False,
                "status": session.classify(exc),
                "message": _describe(exc) + _memory_hint(exc),
            }
        channel.send(reply)


class Session:
    """The candidate's kernel and the checks made around each of its calls."""

    def __init__(self, problem, kernel, guards, device: str, channel: ParentLink) -> None:
        from kerneldisc.evaluate import check

        self.check = check
        self.channel = channel
        self.problem = problem
        self.kernel = kernel
        self.guards = guards
        self.device = device
        self.last_output_bytes: list[int] = []

    def test(self, cmd: dict[str, Any]) -> dict[str, Any]:
        data = self._make_input(cmd["spec"], cmd["seed"])
        before = self.check.snapshot(data)
        self._poison()
        out = self.kernel(data)
        facts = self._inspect(out, data, before)
        return {"ok": True, **facts, "digest": _save(out, cmd["out"])}

    def bench(self, cmd: dict[str, Any]) -> dict[str, Any]:
        from kerneldisc.evaluate.problem import salted_seed
        from kerneldisc.evaluate.protocol import RepeatPolicy, measure
        from kerneldisc.evaluate.timing import make_timer, now_s

        spec, salt, index = cmd["spec"], cmd["salt"], cmd["index"]
        saved: list[dict[str, Any]] = []
        before: dict[int, Any] = {}

        def make_input(rep: int) -> Any:
            # Called right after the previous call returned (or before the first): threads that call
            # left alive are judged on their CPU use from here to the next call, a gap that needs no
            # sleep (a sleep right before a timed call would leave caches cold and slow it down).
            self.guards.mark()
            return self._make_input(spec, salted_seed(salt, spec, "bench", index, rep))

        def before_call(rep: int, data: Any) -> None:
            # Only the threads' CPU use here: walking the seal right before a timed call would
            # leave the CPU's caches full of the harness and slow a short call. The seal is
            # checked right after each call instead.
            self._refuse(self.guards.violation(seal=False))
            if rep == 0 or self.check.small(data):
                before[rep] = self.check.snapshot(data)

        def after_call(rep: int, data: Any, out: Any) -> None:
            self._refuse(self.guards.tampered(wide=rep % WIDE_CHECK_EVERY == 0))
            # The judge decides now, after the call, whether this output is checked.
            self.channel.send({"event": "called", "rep": rep})
            answer = self.channel.recv()
            if answer is None:
                raise SystemExit(0)  # the judge is gone
            inputs_before = before.pop(rep, None)
            if answer.get("check"):  # _inspect checks the seal, torch's tables and threads again
                facts = self._inspect(out, data, inputs_before)
                path = os.path.join(cmd["out_dir"], f"bench{index}_rep{rep}.pt")
                saved.append({"rep": rep, "path": path, **facts, "digest": _save(out, path)})

        started = now_s()
        times = measure(
            self.kernel, make_input, make_timer(self.device), RepeatPolicy.from_settings(cmd["policy"]),
            after_call, before_call,
        )  # fmt: skip
        self._refuse(self.guards.violation(STABILITY_WINDOW_S))  # the last call has no next one
        return {"ok": True, "times_us": times, "op_wall_s": now_s() - started, "checked": saved}

    def _make_input(self, spec: dict[str, Any], seed: int) -> Any:
        """The task's inputs, made in this process; a failure here is said to be one, so that a
        task too big for the memory limit is not mistaken for a bug in custom_kernel."""
        try:
            return self.problem.make_input(spec, seed, self.device)
        except Exception as exc:
            self._refuse(self.guards.tampered())  # a patched generator is the candidate's doing
            hint = "; the inputs may not fit in the candidate's memory limit" + RAISE_LIMIT
            hint = hint if _describe(exc).startswith("out of memory") else ""
            raise Refused(
                "crash",
                f"generating the task's inputs failed before custom_kernel was called{hint}: {_describe(exc)}",
            ) from None

    def _refuse(self, violation: str | None) -> None:
        if violation:
            raise Refused("rejected", violation)

    def _inspect(self, out: Any, data: Any, before: Any) -> dict[str, Any]:
        """Format, aliasing, input mutation, threads, clocks and late writes for one call."""
        # Before the output is touched at all: a hook (a dispatch mode, a replaced builtin) could
        # otherwise compute it on the harness's first read.
        self._refuse(self.guards.tampered(wide=False))
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        problem = self.check.output_format_problem(out, self.device)
        if problem:
            raise Refused(*problem)
        settled = self.check.snapshot(out)
        # One window serves both checks: threads left alive must stay off the CPU through it, and
        # anything still writing behind our back (a thread, work it woke) shows in the output.
        self._refuse(self.guards.violation(STABILITY_WINDOW_S))
        _sleep(STABILITY_MIN_S)
        late = [p for (p, a), (_, b) in zip(self.check.tensors(settled), self.check.tensors(out), strict=False)
                if not self.check.same_bytes(a, b)]  # fmt: skip
        if late:
            raise Refused(
                "rejected", f"{late[0]} kept changing after custom_kernel returned (work left running)"
            )
        self.last_output_bytes = [t.nbytes for _, t in self.check.tensors(out)]
        return {
            "aliased": self.check.aliased_inputs(out, data),
            # (None: a large input not copied before this call; see check.small)
            "mutated": self.check.changed_inputs(before, data) if before is not None else [],
        }

    def _poison(self) -> None:
        """Fill freed memory of the previous output's sizes with NaN, so an output that is only
        partly written shows garbage instead of last call's (or a cached) answer."""
        import torch

        for nbytes in self.last_output_bytes:
            block = torch.full((max(nbytes // 4, 1),), float("nan"), dtype=torch.float32, device=self.device)
            del block

    def classify(self, exc: BaseException) -> str:
        name = type(exc).__name__
        if name == "CompilationError" or "triton.compiler" in type(exc).__module__:
            return "compile_error"
        return "crash"


def _seal_harness(problem, task_dir: str):
    """Seal, before the candidate is imported, the code this process runs on its behalf: the
    evaluator's modules (this one included: it runs as __main__), the task's reference and the
    modules beside it, json on the reply path, and the torch entry points inputs and checks use."""
    import builtins
    import json
    import json.decoder
    import json.encoder

    import torch
    import torch.nn.functional

    from kerneldisc.evaluate.seal import Seal

    seal = Seal()
    for name, mod in list(sys.modules.items()):
        file = str(getattr(mod, "__file__", "") or "")
        if name.startswith("kerneldisc") or file.startswith(_HARNESS) or file.startswith(task_dir + os.sep):
            seal.add_module(mod, "worker" if name == "__main__" else name)
    for fn in (
        problem.generate_input,
        problem.ref_kernel,
        problem.check_implementation,
        problem.candidate_entry,
    ):
        seal.add_function(getattr(fn, "__name__", "function"), fn)
    for mod in (json, json.decoder, json.encoder, builtins):  # builtins: isinstance, len, ...
        seal.add_module(mod)
    # torch's public tables are ten times the rest, too many to compare before every timed call
    # (about 0.3 ms): they are checked after tests, at both ends of a benchmark, before every
    # re-checked call and every WIDE_CHECK_EVERY-th one.
    wide = Seal(wrapper_codes=[torch._disable_dynamo(_seal_harness).__code__])
    # (torch.cuda's timing entry points are guarded by Guards.originals.)
    for owner, label in (
        (torch, "torch"),
        (torch.Tensor, "torch.Tensor"),
        (torch.nn.functional, "torch.nn.functional"),
    ):
        # torch.set_default_dtype rebinds torch.Storage itself: an honest kernel may call it.
        wide.add_public(owner, label, skip=("Storage",) if owner is torch else ())
    return seal, wide


def _import_candidate(path: str):
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location("candidate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["candidate"] = module
    spec.loader.exec_module(module)
    return module


def _memory_hint(exc: BaseException) -> str:
    """For an out-of-memory error: whose allocation failed, and how to give the candidate more."""
    if not _describe(exc).startswith("out of memory"):
        return ""
    own = any(_HARNESS not in f.filename for f in traceback.extract_tb(exc.__traceback__))
    where = "" if own else "; it happened in the evaluator's own copies of the inputs and outputs"
    return f"{where}; the candidate's memory limit may be too small for this task" + RAISE_LIMIT


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


def _save(out: Any, path: str) -> str:
    """Write the output for the judge; return the SHA-256 of the bytes written, which the judge
    checks before reading them, so a helper process that rewrites the file later is caught."""
    import hashlib

    from kerneldisc.evaluate.transfer import encode

    try:
        payload = encode(out)
    except TypeError as exc:  # e.g. a dict key that is not a scalar
        raise Refused("rejected", f"output cannot be handed to the judge: {exc}") from None
    # A fresh regular file: never through a link or a FIFO the candidate put at that path.
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    return hashlib.sha256(payload).hexdigest()


if __name__ == "__main__":
    raise SystemExit(main())
