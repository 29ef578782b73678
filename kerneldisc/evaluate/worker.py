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

from kerneldisc.evaluate.sandbox import ParentLink

_HARNESS = os.path.dirname(os.path.abspath(__file__))
_sleep = time.sleep  # captured before the candidate is imported: it cannot shorten the waits below
# After a test call or a re-checked timed call, how long the output must stay unchanged and any
# thread the candidate's call left alive must stay off the CPU (only waited when such a thread
# exists; otherwise the output is compared again after STABILITY_MIN_S).
STABILITY_WINDOW_S = 0.025
STABILITY_MIN_S = 0.002


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
    parser.add_argument("--device", required=True)
    args = parser.parse_args(argv)
    faulthandler.enable()  # a segfault leaves a Python traceback in the stderr tail
    channel = ParentLink(args.cmd_fd, args.reply_fd)

    import torch

    # Everything the harness uses is imported (and the clocks captured) before the candidate is.
    from kerneldisc.errors import CandidateError
    from kerneldisc.evaluate import check, protocol, timing  # noqa: F401
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
    try:
        module = _import_candidate(args.candidate)
        kernel = problem.candidate_entry(module)
    except (MissingEntry, CandidateError) as exc:
        channel.send({"event": "failed", "status": "rejected", "message": str(exc)})
        return 0
    except Exception as exc:
        channel.send({"event": "failed", "status": "compile_error", "message": _describe(exc)})
        return 0
    patched = guards.patched()
    if patched:
        channel.send({"event": "failed", "status": "rejected", "message": guards.violation()})
        return 0
    channel.send({"event": "ready"})
    session = Session(problem, kernel, guards, device)
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
            reply = {"ok": False, "status": session.classify(exc), "message": _describe(exc)}
        channel.send(reply)


class Session:
    """The candidate's kernel and the checks made around each of its calls."""

    def __init__(self, problem, kernel, guards, device: str) -> None:
        from kerneldisc.evaluate import check

        self.check = check
        self.problem = problem
        self.kernel = kernel
        self.guards = guards
        self.device = device
        self.last_output_bytes: list[int] = []

    def test(self, cmd: dict[str, Any]) -> dict[str, Any]:
        data = self.problem.make_input(cmd["spec"], cmd["seed"], self.device)
        before = self.check.snapshot(data)
        self._poison()
        out = self.kernel(data)
        facts = self._inspect(out, data, before)
        _save(out, cmd["out"])
        return {"ok": True, **facts}

    def bench(self, cmd: dict[str, Any]) -> dict[str, Any]:
        from kerneldisc.evaluate.problem import salted_seed
        from kerneldisc.evaluate.protocol import RepeatPolicy, measure
        from kerneldisc.evaluate.timing import make_timer, now_s

        spec, salt, index = cmd["spec"], cmd["salt"], cmd["index"]
        check_reps = set(cmd["check_reps"])
        saved: list[dict[str, Any]] = []
        before: dict[int, Any] = {}

        def make_input(rep: int) -> Any:
            # Called right after the previous call returned (or before the first): threads that call
            # left alive are judged on their CPU use from here to the next call, a gap that needs no
            # sleep (a sleep right before a timed call would leave caches cold and slow it down).
            self.guards.mark()
            return self.problem.make_input(spec, salted_seed(salt, spec, "bench", index, rep), self.device)

        def before_call(rep: int, data: Any) -> None:
            self._refuse(self.guards.violation())
            if rep in check_reps:
                before[rep] = self.check.snapshot(data)

        def after_call(rep: int, data: Any, out: Any) -> None:
            if rep in check_reps:
                facts = self._inspect(out, data, before.pop(rep))
                path = os.path.join(cmd["out_dir"], f"bench{index}_rep{rep}.pt")
                _save(out, path)
                saved.append({"rep": rep, "path": path, **facts})

        started = now_s()
        times = measure(
            self.kernel, make_input, make_timer(self.device), RepeatPolicy.from_settings(cmd["policy"]),
            after_call, before_call,
        )  # fmt: skip
        self._refuse(self.guards.violation(STABILITY_WINDOW_S))  # the last call has no next one
        return {"ok": True, "times_us": times, "op_wall_s": now_s() - started, "checked": saved}

    def _refuse(self, violation: str | None) -> None:
        if violation:
            raise Refused("rejected", violation)

    def _inspect(self, out: Any, data: Any, before: Any) -> dict[str, Any]:
        """Format, aliasing, input mutation, threads, clocks and late writes for one call."""
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
            "mutated": self.check.changed_inputs(before, data),
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


def _import_candidate(path: str):
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location("candidate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["candidate"] = module
    spec.loader.exec_module(module)
    return module


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


def _save(out: Any, path: str) -> None:
    import torch

    from kerneldisc.evaluate.problem import to_device

    torch.save(to_device(out, "cpu"), path)


if __name__ == "__main__":
    raise SystemExit(main())
