"""Entry point of the trusted judge process (`python -m kerneldisc.evaluate.judge`).

The judge owns everything the candidate must not touch: the salt mixed into every seed, the
reference outputs and the comparisons. It starts the candidate's child first (so both import
torch in parallel), then for each test generates the same salted inputs the child does,
computes the reference on its own copy and compares the child's saved output; for each
benchmark it asks the child to run the timing protocol, draws after each timed call whether its
output is checked, and cross-checks the child's clock against its own. The reference is timed
by a second worker running `ref_kernel` through the same harness, once no process of the
candidate's is left. One request comes in on the command pipe; one signed answer goes out.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import importlib
import math
import os
import random
import resource
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from kerneldisc.evaluate.sandbox import (
    Child,
    ChildDied,
    ChildTimeout,
    Limits,
    ParentLink,
    become_subreaper,
    child_env,
    die_with_parent,
    kill_orphans,
    not_dumpable,
)
from kerneldisc.evaluate.signing import sign


class SignedLink(ParentLink):
    """The judge's link to its caller: every answer goes out signed with the caller's key."""

    key = ""

    def send(self, message: dict[str, Any]) -> None:
        super().send(sign(message, self.key))


_DRAW = random.SystemRandom()  # which timed calls are checked: not reproducible from any seed
TWO_REPS = (0, 1)  # each test runs on two differently salted inputs: stale memory cannot pass twice


class Stop(Exception):
    """Ends the evaluation with a status and message."""

    def __init__(self, status: str, message: str, tests: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.tests = tests


class TaskFault(Exception):
    """The task's own code failed in the judge (a checker that cannot import what it uses)."""


class CallerError(Exception):
    """The request cannot be served (no CUDA where CUDA was asked for, a broken task)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cmd-fd", type=int, required=True)
    parser.add_argument("--reply-fd", type=int, required=True)
    args = parser.parse_args(argv)
    # A judge the candidate has stopped (SIGSTOP) cannot watch for its caller's exit; the kernel
    # kills it when the caller goes. Set here, not in a preexec_fn: the caller has threads.
    die_with_parent()
    # Not dumpable: a same-user candidate can neither read this process's memory (the reference
    # outputs, the answer key) nor reopen its pipes through /proc/<pid>/fd.
    not_dumpable()
    become_subreaper()
    global _SCHEDULING, _LIMITS
    _SCHEDULING = (os.getpriority(os.PRIO_PROCESS, 0), frozenset(os.sched_getaffinity(0)))
    _LIMITS = {res: resource.getrlimit(res) for res in _WATCHED_LIMITS}
    link = SignedLink(args.cmd_fd, args.reply_fd)
    request = link.recv()
    if request is None:
        return 1
    link.key = str(request.pop("key", ""))
    from kerneldisc.evaluate.problem import read_task

    # Read the task before any candidate code exists: its file sits in a folder the candidate
    # could write to.
    task = read_task(request["task_pickle"])
    children: list[Child] = []
    try:
        _check_task_files(task, "before the evaluation started")
    except TamperedTask as exc:
        link.send({"caller_error": str(exc)})
        os._exit(0)
    if request.get("candidate"):
        children.append(_spawn_candidate(request, request["device"]))

    def abandon() -> None:  # the caller is gone: take the candidate down with us
        for child in children:
            child.close()
        os._exit(1)

    link.on_parent_gone(abandon)
    try:
        answer = _serve(request, task, children)
        if request.get(
            "candidate"
        ):  # a rewrite after the reference was imported would poison later evaluations
            _check_task_files(task, "while a candidate was running")
        link.send(answer)
    except TamperedTask as exc:  # only a candidate runs between the two checks
        link.send({"verdict": {"task": task.name, "device": request["device"], "status": "rejected",
                               "message": str(exc)}})  # fmt: skip
    except CallerError as exc:
        link.send({"caller_error": str(exc)})
    except Exception as exc:  # a task whose reference cannot run is the task's fault, not the candidate's
        link.send({"task_error": f"{type(exc).__name__}: {exc}"})
    finally:
        for child in children:
            child.close()
        kill_orphans()  # helpers the candidate daemonised out of its process group
    # Exit without interpreter shutdown: torch may still be loading on a daemon thread when a
    # candidate that failed to import was judged without it.
    os._exit(0)


def _spawn_candidate(request: dict[str, Any], device: str, reference: bool = False) -> Child:
    """The candidate's child process, or (`reference`) the same harness running the task's
    reference, through which the judge times the reference."""
    settings = request["settings_cpu"] if device == "cpu" else request["settings_gpu"]
    limit = settings["memory_limit_mb"]
    limits = Limits(address_space_mb=limit) if device == "cpu" else Limits(data_mb=limit)
    work = os.path.join(request["work_dir"], "reference" if reference else "candidate")
    os.makedirs(work, exist_ok=True)
    who = ["--candidate", os.path.join(work, "ref_kernel"), "--reference"] if reference else [
        "--candidate", request["candidate"]]  # fmt: skip
    return Child(
        "kerneldisc.evaluate.worker",
        ["--task", request["task_pickle"], *who, "--device", device],
        env=child_env(device),
        cwd=work,
        deadline=time.monotonic() + float(request["config"]["timeout_s"]),
        limits=limits,
        tail_bytes=int(request["config"]["output_tail_bytes"]) * 4,
    )


class TamperedTask(Exception):
    """The task's files changed on disk since the task was loaded."""


def _check_task_files(task, when: str) -> None:
    from kerneldisc.task import task_files_digest

    if task.files_digest and task_files_digest(task) != task.files_digest:
        raise TamperedTask(
            f"the files of task {task.name} ({task.path}) changed on disk {when}; the reference "
            "cannot be trusted (a candidate runs as the same user and may have rewritten them)"
        )


def _load_trusted_problem(task):
    """Import the reference, then make sure what was imported is what was loaded: on the CPU the
    import happens after the candidate's own import, so the candidate had a chance to rewrite it."""
    from kerneldisc.evaluate.problem import load_problem

    problem = load_problem(task)
    _check_task_files(task, "while a candidate was running")
    return problem


def _serve(request: dict[str, Any], task, children: list[Child]) -> dict[str, Any]:
    from kerneldisc.evaluate.device import cpu_facts, gpu_facts

    if children and request["device"] == "cpu":
        # torch loads on the side while the candidate imports, so a candidate that fails to
        # import is judged without waiting for it.
        loader = threading.Thread(target=importlib.import_module, args=("torch",), daemon=True)
        loader.start()
        judge = Judge(task, "cpu", request["settings_cpu"], request["work_dir"], children[0])
        judge.spawn_reference = _reference_spawner(request, "cpu", children)

        def prepare() -> None:
            loader.join()
            judge.problem = _load_trusted_problem(task)

        return {"verdict": judge.verdict(request.get("reference"), cpu_facts(), prepare)}

    import torch

    device = request["device"]
    if device.startswith("cuda") and not torch.cuda.is_available():
        if request["requested"] != "auto":
            raise CallerError(f"device {request['requested']} asked for, but torch sees no CUDA GPU")
        device = "cpu"  # NVML saw a GPU that this torch cannot use
        if children:
            children[0].close()
            children[0] = _spawn_candidate(request, device)
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise CallerError(
                f"device {device} asked for, but only {torch.cuda.device_count()} GPU(s) are visible"
            )
        torch.cuda.set_device(index)
    settings = request["settings_cpu"] if device == "cpu" else request["settings_gpu"]
    facts = cpu_facts() if device == "cpu" else gpu_facts(device)
    judge = Judge(task, device, settings, request["work_dir"], children[0] if children else None)
    judge.spawn_reference = _reference_spawner(request, device, children)
    judge.problem = _load_trusted_problem(task)
    if not children:
        return {"reference": judge.reference_timing(facts)}
    return {"verdict": judge.verdict(request.get("reference"), facts)}


def _reference_spawner(request: dict[str, Any], device: str, children: list[Child]) -> Callable[[], Child]:
    def spawn() -> Child:
        child = _spawn_candidate(request, device, reference=True)
        children.append(child)  # closed with the others when the judge ends
        return child

    return spawn


class Judge:
    def __init__(self, task, device: str, settings: dict[str, Any], work_dir: str, child: Child | None):
        self.task = task
        self.problem = None  # loaded once torch is (see _serve)
        self.device = device
        self.settings = settings
        self.work_dir = work_dir
        self.child = child
        self.salt = secrets.token_hex(16)
        # The reference's own harness process (see _time_reference), started when first needed.
        self.spawn_reference: Callable[[], Child] | None = None
        self.reference_child: Child | None = None
        self.tests, self.benchmarks = task.specs_for(device)

    # --- the reference -------------------------------------------------------------------
    def reference_timing(self, facts: dict[str, Any]) -> dict[str, Any]:
        from kerneldisc.evaluate.verdict import RuntimeStats, aggregate

        stats = [
            RuntimeStats.from_times(self._time_reference(j, spec)) for j, spec in enumerate(self.benchmarks)
        ]
        return {
            "task": self.task.name,
            "device": self.device,
            "runtime_us": aggregate([s.mean_us for s in stats], self.task.ranking_by),
            "benchmarks": [
                {"spec": spec, "runtime": asdict(s)} for spec, s in zip(self.benchmarks, stats, strict=True)
            ],
            "device_facts": facts,
        }

    def _time_reference(self, index: int, spec: dict[str, Any]) -> list[float]:
        """The reference's call times, measured by the same harness in a process of its own, so
        that both sides of the speedup pay the same costs around each call (the seal, the
        report to the judge, the checks drawn). Only ever while no candidate process lives."""
        if self.child is not None:
            _restore_scheduling()
        try:
            if self.reference_child is None:
                self.reference_child = self.spawn_reference()
                self._ready(self.reference_child)
            return self._bench(self.reference_child, index, spec, trusted=True)
        except (ChildDied, ChildTimeout, Stop) as exc:
            child = self.reference_child
            what = exc.message if isinstance(exc, Stop) else f"its process {child.exit_description()}"
            tail = " | ".join(child.stderr.text().strip().splitlines()[-3:])
            raise TaskFault(f"timing the reference failed: {what}" + (f": {tail}" if tail else "")) from None

    # --- the candidate -------------------------------------------------------------------
    def verdict(
        self,
        reference: dict[str, Any] | None,
        facts: dict[str, Any],
        prepare: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """The verdict dict; `prepare` (loading torch and the reference) runs once the candidate
        has imported, so a candidate that fails earlier costs no more than its own start."""
        v: dict[str, Any] = {
            "task": self.task.name,
            "device": self.device,
            "device_facts": facts,
            "status": "ok",
            "message": "",
            "tests": [],
            "benchmarks": [],
        }
        try:
            self._ready()
            if prepare is not None:
                prepare()
            v["tests"] = self._run_tests()
            failed = next((t for t in v["tests"] if not t["passed"]), None)
            if failed:
                raise Stop("incorrect", f"wrong output on test {_label(failed['spec'])}: {failed['message']}")
            self._run_benchmarks(v, reference)
        except Stop as stop:
            v["status"], v["message"] = stop.status, stop.message
            v["tests"] = stop.tests or v["tests"]
        except ChildTimeout:
            v["status"] = "timeout"
            v["message"] = f"candidate exceeded the {self.child_timeout():.0f} s time limit and was killed"
        except ChildDied:
            self.child.wait_exit(2.0)
            v["status"] = "crash"
            v["message"] = f"candidate process {self.child.exit_description()} before delivering its result"
        if v["status"] != "ok" and v["tests"] == []:
            v["tests"] = [{"spec": s, "passed": False, "message": "not run"} for s in self.tests]
        self._finish(v)
        return v

    def child_timeout(self) -> float:
        return self.child.deadline - self.child.started

    def _ready(self, child: Child | None = None) -> None:
        message = (child or self.child).recv()
        if message.get("event") == "no_cuda":
            raise CallerError(f"device {self.device} asked for, but the candidate's process sees no CUDA GPU")
        if message.get("event") == "failed":
            raise Stop(*_failure(message, ("compile_error", "rejected")))
        if message.get("event") != "ready":
            raise Stop("rejected", MALFORMED)

    def _run_tests(self) -> list[dict[str, Any]]:
        from kerneldisc.evaluate.problem import salted_seed

        results = []
        for i, spec in enumerate(self.tests):
            problem = None
            for rep in TWO_REPS:
                seed = salted_seed(self.salt, spec, "test", i, rep)
                path = os.path.join(self.work_dir, "candidate", f"test{i}_rep{rep}.pt")
                self.child.send({"op": "test", "spec": spec, "seed": seed, "out": path})
                expected = self._expected(spec, seed)  # computed while the candidate runs
                reply = self.child.recv()
                if reply.get("ok") is not True:
                    status, message = _failure(reply)
                    results.append({"spec": spec, "passed": False, "message": message})
                    results += [
                        {"spec": s, "passed": False, "message": "not run"} for s in self.tests[i + 1 :]
                    ]
                    raise Stop(status, f"on test {_label(spec)}: {message}", results)
                _require(reply, _OUTPUT_FACTS)
                problem = self._judge_output(reply, path, expected)
                if problem:
                    break
            results.append({"spec": spec, "passed": problem is None, "message": problem or ""})
        return results

    def _expected(self, spec: dict[str, Any], seed: int) -> dict[str, Any]:
        """The reference's answer on its own copy of the inputs, and what the reference itself does
        to them (a reference that updates a cache in place permits the candidate to do the same)."""
        from kerneldisc.evaluate import check

        data = self.problem.make_input(spec, seed, self.device)
        ref_data = check.snapshot(data)
        out = self.problem.ref_kernel(ref_data)
        return {
            "data": data,
            "output": out,
            "mutates": set(check.changed_inputs(data, ref_data)),
            "aliases": bool(check.aliased_inputs(out, ref_data)),
        }

    def _judge_output(self, reply: dict[str, Any], path: str, expected: dict[str, Any]) -> str | None:
        """None if the candidate's saved output is right; raises Stop for gaming, returns why not otherwise."""
        from kerneldisc.evaluate import check
        from kerneldisc.evaluate.transfer import TransferError, decode

        aliased = reply.get("aliased") or []
        if aliased and not expected["aliases"]:
            raise Stop(
                "rejected",
                f"{aliased[0]} aliases the input's memory (the input itself or a view of it); return a new tensor",
            )
        mutated = [p for p in reply.get("mutated") or [] if p not in expected["mutates"]]
        if mutated:
            return f"custom_kernel modified its input {mutated[0]}; inputs must come back unchanged"
        # Never read more than a plausible output (a huge file would exhaust the judge's memory),
        # and only from a regular file (not a link to /dev/zero, not a FIFO that never ends).
        limit = 8 * sum(t.nbytes for _, t in check.tensors(expected["output"])) + (1 << 20)
        try:
            payload = _read_regular(path, limit)
        except _TooLarge as exc:
            return f"output is {exc} bytes, far more than the reference's output (not read)"
        except _NotRegular as exc:
            raise Stop(
                "rejected", f"the saved output was replaced by {exc} (not the file the harness wrote)"
            ) from None
        except OSError as exc:
            raise Stop(
                "rejected", f"the saved output is gone ({type(exc).__name__}); something removed it"
            ) from None
        finally:
            if os.path.exists(path):
                os.remove(path)
        # Hash then load the same bytes: what is judged is exactly what the harness wrote.
        if hashlib.sha256(payload).hexdigest() != reply.get("digest"):
            raise Stop(
                "rejected",
                "the saved output changed on disk after the harness wrote it (the candidate or a process it started rewrote it)",
            )
        try:
            out = decode(payload, self.device)
        except TransferError as exc:
            return f"output could not be read back as tensors: {type(exc).__name__}: {str(exc)[:200]}"
        checker = self.problem.check_implementation
        try:
            # A task's own checker decides alone unless task.yml also sets tolerances.
            problem = None
            if checker is None or getattr(self.task, "tolerances_given", True):
                problem = check.compare(out, expected["output"], self.task.rtol, self.task.atol)
            if problem is None and checker is not None:
                problem = _run_checker(checker, check.snapshot(expected["data"]), out)
        except (ImportError, NameError) as exc:  # the checker cannot run at all: the task's fault
            raise TaskFault(f"check_implementation failed: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # an output odd enough to break the comparison is a wrong output
            problem = (
                f"output could not be compared with the reference: {type(exc).__name__}: {str(exc)[:200]}"
            )
        return problem

    def _run_benchmarks(self, v: dict[str, Any], reference: dict[str, Any] | None) -> None:
        from kerneldisc.evaluate.verdict import RuntimeStats, aggregate

        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()  # leave the GPU's memory to the candidate while it is timed
        cand = [self._bench_candidate(j, spec) for j, spec in enumerate(self.benchmarks)]
        cand2 = None
        if reference is not None:
            ref = [RuntimeStats(**b["runtime"]) for b in reference["benchmarks"]]
            if self._speedup(cand, ref) > self.settings["recheck_speedup_above"]:
                cand2 = [self._bench_candidate(j, spec) for j, spec in enumerate(self.benchmarks)]
            self._end_candidate()
        else:
            # The reference is timed with no process of the candidate's left alive (a helper it
            # forked could load the CPU or GPU while the reference runs); a re-measurement of the
            # candidate, if one is needed, is therefore decided before.
            cand2 = [self._bench_candidate(j, spec) for j, spec in enumerate(self.benchmarks)]
            self._end_candidate()
            ref = [RuntimeStats.from_times(self._time_reference(j, s)) for j, s in enumerate(self.benchmarks)]
            if self._speedup(cand, ref) <= self.settings["recheck_speedup_above"]:
                cand2 = None  # measured for nothing: the first measurement is believable
        speedup = self._speedup(cand, ref)
        if cand2 is not None:
            # Believe a large speedup only if a second, independent measurement agrees: keep the
            # more modest of the two (candidate re-timed; reference re-timed here).
            ref2 = [
                RuntimeStats.from_times(self._time_reference(j, s)) for j, s in enumerate(self.benchmarks)
            ]
            v["rechecked"] = True
            if self._speedup(cand2, ref2) < speedup:
                cand, ref, speedup = cand2, ref2, self._speedup(cand2, ref2)
        runtime = aggregate([s.mean_us for s in cand], self.task.ranking_by)
        ref_runtime = aggregate([s.mean_us for s in ref], self.task.ranking_by)
        v["benchmarks"] = [
            {"spec": spec, "runtime": asdict(c), "reference": asdict(r)}
            for spec, c, r in zip(self.benchmarks, cand, ref, strict=True)
        ]
        v.update(runtime_us=runtime, reference_runtime_us=ref_runtime, speedup=speedup)
        v["message"] = f"all {len(self.tests)} tests passed; speedup {speedup:.3f}x over the reference"

    def _speedup(self, cand, ref) -> float:
        from kerneldisc.evaluate.verdict import aggregate

        ranking = self.task.ranking_by
        return aggregate([s.mean_us for s in ref], ranking) / aggregate([s.mean_us for s in cand], ranking)

    def _end_candidate(self) -> None:
        """Let the candidate's process go and kill whatever it left running."""
        self._finish_child()
        self.child.close()
        if kill_orphans():
            raise Stop(
                "rejected",
                "the candidate left processes running that could not be killed (a helper forking itself "
                "faster than it can be stopped); nothing it does can be timed fairly",
            )

    def _bench_candidate(self, index: int, spec: dict[str, Any]):
        from kerneldisc.evaluate.verdict import RuntimeStats

        return RuntimeStats.from_times(self._bench(self.child, index, spec))

    def _bench(self, child: Child, index: int, spec: dict[str, Any], trusted: bool = False) -> list[float]:
        """One benchmark's call times from a harness process: the candidate's, or (`trusted`) the
        reference's, whose outputs and clock need no checking."""
        from kerneldisc.evaluate.problem import salted_seed

        out_dir = os.path.join(self.work_dir, "reference" if trusted else "candidate")
        salt = self.salt + ("-reference" if trusted else "")
        started = time.monotonic()
        child.send(
            {"op": "bench", "spec": spec, "salt": salt, "index": index, "out_dir": out_dir,
             "policy": self.settings}
        )  # fmt: skip
        chosen, calls = self._choose_checks(child, spec)
        reply = child.recv()
        wall = time.monotonic() - started
        if reply.get("ok") is not True:
            status, message = _failure(reply)
            raise Stop(status, f"on benchmark {_label(spec)}: {message}")
        _require(reply, {"times_us": list, "op_wall_s": (int, float), "checked": list})
        for saved in reply["checked"]:
            _require(saved, {"rep": int, **_OUTPUT_FACTS})
        numbers = [*reply["times_us"], reply["op_wall_s"]]
        if not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in numbers
        ):
            raise Stop("rejected", MALFORMED)
        times = [float(t) for t in reply["times_us"]]
        if not times or min(times) <= 0:
            raise Stop("rejected", f"benchmark {_label(spec)}: non-positive call times reported")
        checked = {saved.get("rep") for saved in reply["checked"]}
        if len(times) != calls or checked != chosen or len(reply["checked"]) != len(chosen):
            raise Stop(
                "rejected",
                f"benchmark {_label(spec)}: the candidate's process reported {len(times)} timed calls and "
                f"checked outputs of calls {sorted(map(str, checked))}, but announced {calls} calls and the "
                f"evaluator chose calls {sorted(chosen)} (the harness was bypassed)",
            )
        # The child's own clock must agree with ours: its op cannot have lasted much less than we
        # waited, and its timed calls cannot add up to more than the op.
        if trusted:
            for saved in reply["checked"]:
                _remove(os.path.join(out_dir, f"bench{index}_rep{saved['rep']}.pt"))
            return times
        op_wall = float(reply["op_wall_s"])
        if op_wall < 0.8 * wall - 0.05 or sum(times) * 1e-6 > op_wall * 1.01 + 1e-3:
            raise Stop(
                "rejected",
                f"benchmark {_label(spec)}: the candidate's clock disagrees with the evaluator's "
                f"(its op {op_wall:.3f} s, calls {sum(times) * 1e-6:.3f} s, observed {wall:.3f} s)",
            )
        for saved in reply["checked"]:
            seed = salted_seed(self.salt, spec, "bench", index, saved["rep"])
            path = os.path.join(out_dir, f"bench{index}_rep{saved['rep']}.pt")  # never a path it names
            problem = self._judge_output(saved, path, self._expected(spec, seed))
            if problem:
                raise Stop("incorrect", f"timed call {saved['rep']} of benchmark {_label(spec)}: {problem}")
        return times

    def _choose_checks(self, child: Child, spec: dict[str, Any]) -> tuple[set[int], int]:
        """Answer the child's report after each timed call with whether that call's output is
        checked: the first always, each later one with probability `check_fraction`. The draw
        happens here, after the call returned, so a candidate cannot know beforehand which of
        its calls may return stale or unfinished memory unseen. Returns (chosen, calls)."""
        chosen: set[int] = set()
        calls = 0
        fraction = float(self.settings["check_fraction"])
        while True:
            message = child.peek()
            if message.get("event") != "called":
                return chosen, calls
            child.recv()
            if message.get("rep") != calls:
                raise Stop("rejected", f"benchmark {_label(spec)}: timed calls were reported out of order")
            check = calls == 0 or _DRAW.random() < fraction
            if check:
                chosen.add(calls)
            calls += 1
            child.send({"check": check})

    def _finish_child(self) -> None:
        """Let the child leave cleanly (killed if it does not within 5 s)."""
        child = self.child
        if child.proc.poll() is None and not child.timed_out:
            try:
                child.send({"op": "exit"})
            except ChildDied:
                pass
            if child.wait_exit(5.0) is None:
                child.kill()

    def _finish(self, v: dict[str, Any]) -> None:
        """Let the child leave cleanly, then keep its output tails."""
        child = self.child
        self._finish_child()
        limit = int(self.settings["output_tail_bytes"])
        v["stdout_tail"] = child.stdout.text()[-limit:]
        v["stderr_tail"] = child.stderr.text()[-limit:]
        if v["status"] == "crash" and "before delivering" in v["message"]:
            lines = [line for line in v["stderr_tail"].splitlines() if line.strip()]
            # faulthandler's report starts with "Fatal Python error"; its first frames are the candidate's
            start = next((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), None)
            shown = lines[start : start + 5] if start is not None else lines[-6:]
            if shown:
                v["message"] += "; stderr shows:\n" + "\n".join(shown)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class _NotRegular(Exception):
    pass


class _TooLarge(Exception):
    pass


def _read_regular(path: str, limit: int) -> bytes:
    """At most `limit` bytes of a regular file; _NotRegular for anything else at that path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _NotRegular("a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegular("something that is not a regular file")
        if info.st_size > limit:
            raise _TooLarge(info.st_size)
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit + 1)[:limit]
    finally:
        os.close(fd)


def _restore_scheduling() -> None:
    """Undo what a same-user candidate may have done to this process's threads (pin them to one
    CPU, raise their nice value) so the reference is not slowed; what cannot be undone (nice is
    only lowered with privileges) ends the evaluation."""
    if _SCHEDULING is None:
        return
    nice, cpus = _SCHEDULING
    for tid in (int(t) for t in os.listdir("/proc/self/task")):
        try:
            if frozenset(os.sched_getaffinity(tid)) != cpus:
                os.sched_setaffinity(tid, cpus)
            if os.getpriority(os.PRIO_PROCESS, tid) > nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except ProcessLookupError:
            continue  # the thread has ended
        except PermissionError:
            raise Stop(
                "rejected", "the candidate lowered the judge's scheduling priority, which cannot be restored"
            ) from None
    for res, limits in _LIMITS.items():
        if resource.getrlimit(res) != limits:
            try:
                resource.setrlimit(res, limits)
            except (ValueError, OSError):
                raise Stop(
                    "rejected", "the candidate lowered the judge's resource limits, which cannot be restored"
                ) from None


_SCHEDULING: tuple[int, frozenset[int]] | None = None  # the judge's nice value and CPUs at start
# A same-user candidate can lower these on its judge (prlimit): memory or files for the reference.
_WATCHED_LIMITS = (resource.RLIMIT_AS, resource.RLIMIT_DATA, resource.RLIMIT_NOFILE, resource.RLIMIT_STACK,
                   resource.RLIMIT_CPU, resource.RLIMIT_FSIZE)  # fmt: skip
_LIMITS: dict[int, tuple[int, int]] = {}
MALFORMED = "the candidate's process sent a malformed reply (the harness was bypassed)"
# What the candidate's process may report of a failure; "ok" and "timeout" are the judge's to say.
_CHILD_STATUSES = ("compile_error", "incorrect", "crash", "rejected")
_OUTPUT_FACTS = {"digest": str, "aliased": list, "mutated": list}


def _failure(reply: dict[str, Any], allowed: tuple[str, ...] = _CHILD_STATUSES) -> tuple[str, str]:
    """(status, message) of a failure the child reports, checked: the child runs candidate code."""
    status, message = reply.get("status"), reply.get("message")
    if status not in allowed or not isinstance(message, str):
        raise Stop("rejected", MALFORMED)
    return status, message


def _require(reply: dict[str, Any], fields: dict[str, Any]) -> None:
    if not isinstance(reply, dict):
        raise Stop("rejected", MALFORMED)
    for key, kind in fields.items():
        if not isinstance(reply.get(key), kind) or isinstance(reply.get(key), bool) and kind is int:
            raise Stop("rejected", MALFORMED)
    for key in ("aliased", "mutated"):
        if key in fields and not all(isinstance(p, str) for p in reply[key]):
            raise Stop("rejected", MALFORMED)


def _run_checker(checker, data: Any, out: Any) -> str | None:
    """A task's own check_implementation: (ok, message), a bool, or a message (empty = ok)."""
    result = checker(data, out)
    if isinstance(result, tuple):
        ok, message = bool(result[0]), str(result[1]) if len(result) > 1 else ""
    elif isinstance(result, str):
        ok, message = not result, result
    else:
        ok, message = bool(result), ""
    return None if ok else f"task check failed: {message or 'no detail given'}"


def _label(spec: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}"


if __name__ == "__main__":
    raise SystemExit(main())
