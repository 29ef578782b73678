"""The trusted judge: one evaluation, in a process forked from the evaluator's fork server.

Everything a verdict depends on happens here, in a process no candidate code runs in: the
secret salt and the inputs (generated with the task's own generator, then written into shared
memory), the clock (the kernel's CPU accounting of the candidate's process group on the CPU;
the judge's wall clock bounding the harness's CUDA events on a GPU), reading the outputs (from
the stopped candidate's memory) and comparing them with the reference. The candidate's and the
reference's harness processes are forked from here before the judge holds any secret, and are
stopped whenever they are not serving a call.

One request comes in on the command pipe (then the caller's answer key, once every harness
process exists); one signed answer goes out.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from kerneldisc.evaluate.cgroups import HarnessGroup
from kerneldisc.evaluate.controller import HarnessProcess
from kerneldisc.evaluate.gpu_compile import imports_triton
from kerneldisc.evaluate.sandbox import (
    ChildDied,
    ChildTimeout,
    Limits,
    become_subreaper,
    die_with_parent,
    kill_orphans,
    not_dumpable,
)
from kerneldisc.evaluate.uids import lease, purge
from kerneldisc.evaluate.verdict import timing_method
from kerneldisc.task_model import spec_label

_DRAW = random.SystemRandom()  # which timed calls are checked: not reproducible from any seed
TWO_REPS = (0, 1)  # each test runs on two differently salted inputs: stale memory cannot pass twice
MALFORMED = "the candidate's process sent a malformed reply (the harness was bypassed)"
# What the candidate's process may report of a failure; "ok" and "timeout" are the judge's to say.
_CHILD_STATUSES = ("compile_error", "incorrect", "crash", "rejected")
_HANDSHAKE_QUANTILE = 0.9
NULL_CALLS, _FLOOR_QUANTILE = 20, 0.1


class Stop(Exception):
    """Ends the evaluation with a status and message."""

    def __init__(self, status: str, message: str, tests: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.tests = status, message, tests


class TaskFault(Exception):
    """The task's own code failed in the judge (a reference or checker that cannot run)."""


class CallerError(Exception):
    """The request cannot be served (no CUDA where CUDA was asked for)."""


class _WrongOutput(Exception):
    """The output's description already shows it is wrong (structure, shape, dtype)."""


class TamperedTask(Exception):
    """The task's files changed on disk since the task was loaded."""


def main(cmd_fd: int, reply_fd: int) -> None:
    """The judge's whole life (in a child of the fork server); never returns."""
    from kerneldisc.evaluate.link import SignedLink

    code = 0
    try:
        die_with_parent()
        not_dumpable()  # a same-user candidate can neither read this memory nor reopen its pipes
        become_subreaper()  # helpers the candidate daemonises stay in view and die with us
        link = SignedLink(cmd_fd, reply_fd)
        request = link.recv()
        if request is not None:
            _judge(request, link)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        kill_orphans()
        os._exit(code)


def _judge(request: dict[str, Any], link) -> None:
    os.environ.update(request.get("env") or {})
    from kerneldisc.evaluate.problem import load_problem, task_from_dict

    task = task_from_dict(request["task"])
    procs: list[HarnessProcess] = []
    try:
        _check_task_files(task, "before the evaluation started")
        device = _usable_device(request)
        if device == "cpu":
            _cap_own_memory()
            if "triton" in (task.reference_source or ""):  # the judge runs the reference too
                from kerneldisc.evaluate.triton_mode import ensure as ensure_triton_mode

                ensure_triton_mode(interpret=True)
        # The reference is loaded before any candidate process exists, its modules compiled from
        # the bytes read now (see task.import_reference).
        problem = load_problem(task)
        _check_task_files(task, "while the reference was loaded")
        if task.kind == "kernelbench" and device == "cpu":
            _check_kernelbench_fits(task, request)
        elif device == "cpu" and not task.bytes:
            _check_folder_fits(task, problem, request)
        judge = Judge(task, problem, device, request)
        if request.get("reference") is None:
            # Forked first, so the candidate's seccomp filter forbids signalling it (see seccomp.py).
            judge.reference_proc = judge.fork_harness("reference")
            procs.append(judge.reference_proc)
            judge.ready(judge.reference_proc)
        if request.get("candidate"):
            judge.candidate = judge.fork_harness("candidate")
            procs.append(judge.candidate)
    except (TamperedTask, CallerError) as exc:
        link.send_before_key({"caller_error": str(exc)})
        return
    except (TaskFault, Stop) as exc:
        link.send_before_key({"task_error": str(exc)})
        return
    except Exception as exc:
        link.send_before_key({"task_error": f"{type(exc).__name__}: {exc}"})
        return  # (main() kills any harness process already forked)
    # Only now, with every harness process forked, does the judge take its secrets.
    key_message = link.recv()
    if not key_message:
        return
    link.key = str(key_message.get("key", ""))
    for proc in procs:
        proc.others = frozenset(p.pid for p in procs if p is not proc)
        proc.start_tails()

    def abandon() -> None:  # the caller is gone: take the harness processes down with us
        for proc in procs:
            proc.close()
        os._exit(1)

    link.on_parent_gone(abandon)
    answer = _answer(judge, task, request)
    # Nothing of the candidate's is left when the answer goes: the caller may end us at once.
    for proc in procs:
        proc.close()
    if judge.uids:
        kill_orphans()
        for uid in judge.uids.values():
            purge(uid)
    for group in judge.groups:
        group.remove()
    link.send(answer)


def _answer(judge: Judge, task, request: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = judge.serve(request)
        if request.get("candidate"):  # a rewrite after the reference was loaded poisons later runs
            _check_task_files(task, "while a candidate was running")
        return answer
    except TamperedTask as exc:  # only a candidate runs between the two checks
        return {"verdict": judge.failed("rejected", str(exc))}
    except CallerError as exc:
        return {"caller_error": str(exc)}
    except TaskFault as exc:
        return {"task_error": str(exc)}
    except Exception as exc:  # the task's reference could not run: the task's fault
        if request.get("candidate"):
            try:
                _check_task_files(task, "while a candidate was running")
            except TamperedTask as tampered:
                return {"verdict": judge.failed("rejected", str(tampered))}
        return {"task_error": f"the reference failed: {type(exc).__name__}: {exc}"}


def _check_kernelbench_fits(task, request: dict[str, Any]) -> None:
    """A KernelBench file has no `bytes` expression: its sizes are worked out on the meta device
    (no memory) before anything is made, and refused with the size needed if they cannot fit; a
    default memory limit grows with them as it does for tasks with one (sizes.default_limit_mb)."""
    from kerneldisc.errors import ConfigError, TaskError
    from kerneldisc.evaluate.sizes import check_need, limit_for
    from kerneldisc.kernelbench import meta_megabytes

    need = meta_megabytes(task)
    if need is None:
        return
    settings = request["settings_cpu"]
    if request["config"].get("memory_limit_mb") is None:
        settings["memory_limit_mb"] = limit_for(need, settings["memory_limit_mb"])
    try:
        check_need(
            f"KernelBench problem {task.name}",
            need,
            settings["memory_limit_mb"],
            "worked out on the meta device",
        )
    except TaskError as exc:
        raise TaskFault(str(exc)) from None
    except ConfigError as exc:
        raise CallerError(str(exc)) from None


def _check_folder_fits(task, problem, request: dict[str, Any]) -> None:
    """A task folder without a `bytes` expression: each distinct size's inputs are made once here
    (values never used again) and measured; the output is taken to be as large again. A default
    memory limit grows with the largest, as for tasks with one (sizes.py)."""
    import secrets as _secrets

    import kerneldisc.evaluate.check as check
    from kerneldisc.errors import ConfigError, TaskError
    from kerneldisc.evaluate.sizes import check_need, limit_for

    tests, benchmarks = task.specs_for("cpu")
    need, label = 0.0, ""
    for spec in [*tests, *benchmarks][:32]:
        try:
            data = problem.make_input(spec, _secrets.randbits(32), "cpu")
        except Exception as exc:
            raise TaskFault(_input_failure(task, spec, "cpu", exc)) from None
        mb = 2 * sum(t.numel() * t.element_size() for _, t in check.tensors(data)) / 1e6
        if mb > need:
            need, label = mb, spec_label(spec)
        del data
    settings = request["settings_cpu"]
    if request["config"].get("memory_limit_mb") is None:
        settings["memory_limit_mb"] = limit_for(need, settings["memory_limit_mb"])
    try:
        check_need(
            f"task {task.name}: {{{label}}}", need, settings["memory_limit_mb"], "its inputs, measured, twice"
        )
    except TaskError as exc:
        raise TaskFault(str(exc)) from None
    except ConfigError as exc:
        raise CallerError(str(exc)) from None


def _cap_own_memory() -> None:
    """The judge's own address space capped at a share of the machine (soft limit: its harness
    processes set their own): inputs too large for the machine end as a MemoryError the judge
    reports, not as the kernel's out-of-memory killer choosing among the machine's processes."""
    import resource

    from kerneldisc.evaluate.sizes import JUDGE_FRACTION, trusted_cap_mb

    cap = trusted_cap_mb(JUDGE_FRACTION)
    if cap:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or hard > cap << 20:
            resource.setrlimit(resource.RLIMIT_AS, (cap << 20, hard))


def _usable_device(request: dict[str, Any]) -> str:
    """The device really used: a GPU torch can see (checked through NVML, so that CUDA is not
    initialised before the harness processes are forked), or the CPU when `auto` found none."""
    device = request["device"]
    if not device.startswith("cuda"):
        return device
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    import torch

    if not torch.cuda.is_available():
        if request["requested"] != "auto":
            raise CallerError(f"device {request['requested']} asked for, but torch sees no CUDA GPU")
        return "cpu"
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        raise CallerError(
            f"device {device} asked for, but only {torch.cuda.device_count()} GPU(s) are visible"
        )
    return device


def _check_task_files(task, when: str) -> None:
    from kerneldisc.task import task_files_digest

    if task.files_digest and task_files_digest(task) != task.files_digest:
        raise TamperedTask(
            f"the files of task {task.name} ({task.path}) changed on disk {when}; the reference "
            "cannot be trusted (a candidate runs as the same user and may have rewritten them)"
        )


def _compile_entry(e: dict[str, Any]) -> dict[str, Any]:
    """One gpu_compile entry as the harness reported it, reduced to known fields of known types
    (it is the candidate's word: bounded, never trusted as code or markup)."""

    def number(key):
        value = e.get(key)
        return (
            int(value)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 40
            else None
        )

    ok = e.get("ok")
    return {
        "kernel": str(e.get("kernel", "?"))[:100],
        "target": str(e.get("target", "?"))[:16],
        "ok": ok if isinstance(ok, bool) else None,
        **{k: number(k) for k in ("registers", "spill_stores", "spill_loads", "stack_bytes", "shared_bytes")},
        "error": str(e["error"])[:2000] if e.get("error") and ok is not True else None,
    }


def _input_failure(task, spec: dict[str, Any], device: str, exc: BaseException) -> str:
    """Why the task's inputs could not be made, in the words a task author needs: a generator
    that makes its inputs on CUDA on a machine without a GPU, or sizes beyond this machine."""
    text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
    where = f"generate_input of task {task.name} for {_label(spec)}"
    if device == "cpu" and ("cuda" in str(exc).lower() or "nvidia" in str(exc).lower()):
        return (
            f"{where} makes its inputs on a CUDA device, and this evaluation runs on the CPU ({text}). "
            "Run it on a machine with a GPU, or give the task a CPU path: generate_input creating its "
            "tensors on the device it is given (or with no device= argument), and CPU-sized "
            "cpu_tests / cpu_benchmarks in task.yml (docs/tasks.md)"
        )
    if isinstance(exc, MemoryError) or "out of memory" in text.lower() or "can't allocate" in text.lower():
        return (
            f"{where} ran out of memory while making the inputs, in the evaluator's own process "
            f"({text}): these sizes do not fit this machine. Run it on a machine with more memory or a "
            "GPU, or give the task smaller sizes (cpu_tests / cpu_benchmarks in task.yml)"
        )
    return f"generate_input failed for {_label(spec)}: {text}"


class _CompileCache:
    """Successful GPU compilations by key (gpu_compile.cache_key), one JSON file each under
    kerneldisc's cache folder, written by the judge (a candidate running as its own user cannot
    write there)."""

    def __init__(self) -> None:
        self._folder: str | None = None

    def folder(self) -> str:
        if self._folder is None:
            from kerneldisc.cache import cache_root

            self._folder = str(cache_root() / "gpu-compile")
        return self._folder

    def get(self, key: str | None) -> dict[str, Any] | None:
        if not key:
            return None
        try:
            with open(os.path.join(self.folder(), key + ".json")) as f:
                entry = json.load(f)
        except (OSError, ValueError):
            return None
        return _compile_entry(entry) if isinstance(entry, dict) and entry.get("ok") is True else None

    def put(self, key: str | None, entry: dict[str, Any]) -> None:
        if not key:
            return
        try:
            os.makedirs(self.folder(), exist_ok=True)
            tmp = os.path.join(self.folder(), f".{key}.{os.getpid()}.tmp")
            with open(tmp, "w") as f:
                json.dump(entry, f)
            os.replace(tmp, os.path.join(self.folder(), key + ".json"))
        except OSError:
            pass  # a cache that cannot be written only costs time


_COMPILE_CACHE = _CompileCache()


ZERO_CALL_RETRIES = 3  # calls charged nothing, made again (on fresh inputs) before that is a verdict
MAX_COMPILE_ENTRIES = 64  # gpu_compile entries a verdict keeps (the candidate's word: bounded)


@dataclass
class Samples:
    """One benchmark's calls as measured. On the CPU, `times` are what each call is charged: the
    CPU time its whole process group used from SIGCONT to SIGSTOP (the kernel's accounting, read by
    the judge). On a GPU, `times` are the harness's CUDA-event times, and a call is charged
    `max(event, wall - handshake)`: never less than the judge's own wall time of the call minus
    the reference's handshake (what the same harness adds around the events), so events that
    under-report gain at most the handshake's spread."""

    gpu: bool
    times: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)  # the judge's wall µs per call

    floor: float | None = None  # on the CPU: a null call's charge in the reference's harness

    def charged(self, handshake: float | None) -> list[float]:
        if handshake is None:
            return list(self.times)
        if not self.gpu:  # on the CPU the handshake is the floor: what a call costs with no kernel
            return [max(t, handshake) for t in self.times]
        return [max(t, w - handshake) for t, w in zip(self.times, self.walls, strict=True)]

    def handshake(self) -> float | None:
        """On a GPU: the judge's wall time minus the event time per call, a high quantile. On the
        CPU: the floor measured with null calls (see Judge._null_floor)."""
        if not self.gpu:
            return self.floor
        if not self.times:
            return None
        return _quantile([w - t for t, w in zip(self.times, self.walls, strict=True)], _HANDSHAKE_QUANTILE)


class Judge:
    def __init__(self, task, problem, device: str, request: dict[str, Any]) -> None:
        self.task = task
        self.problem = problem
        self.device = device
        self.request = request
        self.settings = request["settings_cpu"] if device == "cpu" else request["settings_gpu"]
        self.work_dir = request["work_dir"]
        self.candidate: HarnessProcess | None = None
        self.reference_proc: HarnessProcess | None = None
        self.tests, self.benchmarks = task.specs_for(device)
        self.salt = ""  # drawn once the harness processes exist (see serve)
        self.core = _pick_core()
        self.gpu = device.startswith("cuda")
        self._layouts: dict[int, str] = {}
        if self.gpu:
            self.arena = None  # made after the forks: CUDA must not be initialised before them
            self._arena_fd = os.open(os.devnull, os.O_RDONLY)
        else:
            from kerneldisc.evaluate.arena import CpuArena

            self.arena = CpuArena()
            self._arena_fd = self.arena.reader_fd
        self.reader = None
        isolate = bool(request["config"].get("isolate_user", True))
        # One uid for the reference's process, another for the candidate's (root judges only).
        self.uids = (
            dict(zip(("reference", "candidate"), lease(2), strict=True))
            if isolate and os.geteuid() == 0
            else {}
        )
        self.interpreted = False
        self._compiling: list[str] = []  # targets being compiled for (named if time runs out)
        # Input leaves the reference writes into (GPU MODE's output buffers, caches updated in
        # place): the harnesses get private writable copies of them (see _probe_writable).
        self._writable: list[int] = []
        self.groups: list[HarnessGroup] = []
        self.keep_read = bool(self.uids) and not _installation_readable(task)

    # --- processes -----------------------------------------------------------------------
    def fork_harness(self, role: str) -> HarnessProcess:
        from kerneldisc.evaluate.harness import HarnessSpec, run
        from kerneldisc.evaluate.sizes import REFERENCE_FRACTION, trusted_cap_mb

        limit = self.settings["memory_limit_mb"]
        if role == "reference" and self.device == "cpu":
            # Trusted: held to a share of the machine, never to the candidate's limit (whose
            # out-of-memory would otherwise read as the candidate's fault).
            limit = trusted_cap_mb(REFERENCE_FRACTION, at_least=limit)
        limits = Limits(address_space_mb=limit) if self.device == "cpu" else Limits(data_mb=limit)
        work = os.path.join(self.work_dir, role)
        os.mkdir(work, 0o700)  # fresh: never a folder that existed before this evaluation
        source = self.request.get("candidate") if role == "candidate" else None
        if source is not None:
            fd = os.open(os.path.join(work, "candidate.py"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(source)
        # The caching allocator's classic segments: their IPC handles are what outputs cross with.
        env: dict[str, str | None] = {"TRITON_INTERPRET": "1" if self.device == "cpu" else None,
                                      "PYTORCH_CUDA_ALLOC_CONF": None,
                                      # compiled kernels of this evaluation only (ptxas's log, with
                                      # registers and spills, comes with a compilation, not a hit)
                                      "TRITON_CACHE_DIR": os.path.join(work, ".triton")}  # fmt: skip
        uid = self.uids.get(role)
        if uid is not None:
            os.chmod(self.work_dir, 0o711)  # its own folder is reachable, the rest not listable
            for path in [work, *(os.path.join(work, n) for n in os.listdir(work))]:
                os.chown(path, uid, uid)
            # Its own home and caches: it can write nothing of the judge's user.
            name = f"kerneldisc{uid}"
            env.update(HOME=work, TMPDIR=work, USER=name, LOGNAME=name, XDG_CACHE_HOME=os.path.join(work, ".cache"),
                       TORCHINDUCTOR_CACHE_DIR=os.path.join(work, ".inductor"))  # fmt: skip
        group = HarnessGroup.create(f"{os.getpid()}-{role}", limit if self.device == "cpu" else None)
        if group is not None:
            self.groups.append(group)
        spec = HarnessSpec(
            role=role, device=self.device, core=self.core, limits=limits, work_dir=work, env=env,
            candidate_path=os.path.join(work, "candidate.py") if source is not None else None,
            candidate_source=source, uid=uid, keep_read=self.keep_read, exact_cpu=group is not None,
            # the compiling helper only for candidates that use Triton: it is a child of the
            # harness, which a kernel that waits for all its own children would wait for too
            gpu_compile=role == "candidate" and bool(self._gpu_targets()) and imports_triton(source or ""),
            protected=[self.reference_proc.pid] if role == "candidate" and self.reference_proc else [],
            uses_triton=imports_triton(source or "") if role == "candidate" else "triton" in (self.task.reference_source or ""),
            entry=self.problem.ref_kernel if role == "reference" else self.problem.candidate_entry,
        )  # fmt: skip
        budget = float(self.request["config"]["timeout_s"])
        if role == "reference":
            from kerneldisc.evaluate.protocol import REFERENCE_BUDGET_S

            budget = max(budget, REFERENCE_BUDGET_S)  # trusted: its time is the task's, not a candidate's
        return HarnessProcess.fork(
            lambda: run(spec), self._arena_fd, int(self.request["config"]["output_tail_bytes"]) * 4,
            budget, role, read_memory=role == "candidate", group=group,
        )  # fmt: skip

    def serve(self, request: dict[str, Any]) -> dict[str, Any]:
        from kerneldisc.evaluate.device import cpu_facts, gpu_facts

        self.salt = secrets.token_hex(16)
        if self.gpu:
            import torch

            from kerneldisc.evaluate.cuda_ipc import CudaArena, OutputReader

            os.environ.pop("PYTORCH_CUDA_ALLOC_CONF", None)  # classic segments: IPC handles work
            torch.cuda.set_device(torch.device(self.device))
            self.arena = CudaArena(self.device)
            self.reader = OutputReader(self.device)
        facts = gpu_facts(self.device) if self.gpu else cpu_facts()
        if not self.gpu:
            self._writable = self._probe_writable()
        if self.candidate is None:
            return {"reference": self.reference_timing(facts)}
        return {"verdict": self.verdict(request.get("reference"), facts)}

    def failed(self, status: str, message: str) -> dict[str, Any]:
        return {"task": self.task.name, "device": self.device, "status": status, "message": message}

    # --- the reference -------------------------------------------------------------------
    def reference_timing(self, facts: dict[str, Any]) -> dict[str, Any]:
        from kerneldisc.evaluate.verdict import aggregate

        stats, handshakes = self._time_reference()
        return {
            "task": self.task.name,
            "device": self.device,
            "runtime_us": aggregate([s.mean_us for s in stats], self.task.ranking_by),
            "benchmarks": [
                {"spec": spec, "runtime": asdict(s), "handshake_us": h}
                for spec, s, h in zip(self.benchmarks, stats, handshakes, strict=True)
            ],
            "device_facts": facts,
            "method": timing_method(self.device),
        }

    def _time_reference(self):
        """The reference's call times, through the same harness as the candidate's, in a process
        of its own forked before the candidate's; only ever while no candidate process lives."""
        from kerneldisc.evaluate.verdict import RuntimeStats

        proc = self.reference_proc
        try:
            stats, handshakes = [], []
            for j, spec in enumerate(self.benchmarks):
                samples = self._bench(proc, j, spec, trusted=True)
                if not self.gpu:
                    samples.floor = self._null_floor(proc, j, spec)
                stats.append(
                    RuntimeStats.from_times(samples.charged(samples.floor if not self.gpu else None))
                )
                handshakes.append(samples.handshake())
            return stats, handshakes
        except (ChildDied, ChildTimeout, Stop) as exc:
            if self.candidate is not None and isinstance(exc, ChildDied) and proc.stopped_itself:
                raise Stop(
                    "rejected", "the evaluator's reference process was stopped by the candidate"
                ) from None
            what = exc.message if isinstance(exc, Stop) else f"its process {proc.exit_description()}"
            if proc.group is not None and proc.group.out_of_memory():
                what += " (the reference ran out of memory: its inputs are too large for this machine)"
            tail = " | ".join(proc.tails(4000)[1].strip().splitlines()[-3:])
            if self.candidate is not None:  # with a candidate alive, no verdict may blame the task
                raise Stop(
                    "crash",
                    f"the reference's process failed while this candidate was evaluated ({what}); no reward",
                ) from None
            raise TaskFault(f"timing the reference failed: {what}" + (f": {tail}" if tail else "")) from None

    # --- the candidate -------------------------------------------------------------------
    def verdict(self, reference: dict[str, Any] | None, facts: dict[str, Any]) -> dict[str, Any]:
        v: dict[str, Any] = {**self.failed("ok", ""), "device_facts": facts, "tests": [], "benchmarks": []}
        try:
            self.ready(self.candidate)
            v["tests"] = self._run_tests()
            failed = next((t for t in v["tests"] if not t["passed"]), None)
            if failed:
                raise Stop("incorrect", f"wrong output on test {_label(failed['spec'])}: {failed['message']}")
            self._compile_for_gpu(v)
            self._run_benchmarks(v, reference)
        except Stop as stop:
            v["status"], v["message"] = stop.status, stop.message
            v["tests"] = stop.tests or v["tests"]
        except ChildTimeout:
            v["status"] = "timeout"
            passed = f"after all {len(self.tests)} tests passed, " if v["tests"] and all(
                t["passed"] for t in v["tests"]) else ""  # fmt: skip
            compiling = (
                f"while its Triton kernels were compiled for {', '.join(self._compiling)} "
                if self._compiling else ""
            )  # fmt: skip
            v["message"] = (
                f"candidate exceeded the {self.candidate.budget_s:.0f} s time limit {passed}{compiling}"
                "and was killed"
            )
        except ChildDied:
            v["status"] = "rejected" if self.candidate.violation else "crash"
            v["message"] = (
                f"candidate process {self.candidate.exit_description()} before delivering its result"
            )
            if self.candidate.group is not None and self.candidate.group.out_of_memory():
                v["message"] += (
                    f" (it used more than its memory limit of {self.settings['memory_limit_mb']} MB)"
                )
            elif self.candidate.faulted():
                v["message"] += " (its inputs are mapped read-only: a kernel that writes into them faults)"
        except TaskFault:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a candidate made the judge trip on earns nothing
            v["status"] = "rejected"
            v["message"] = (
                f"the evaluator could not judge this candidate ({type(exc).__name__}: {str(exc)[:300]}); no reward"
            )
        v["interpreted"] = self.interpreted
        if v["status"] != "ok" and v["tests"] == []:
            v["tests"] = [{"spec": s, "passed": False, "message": "not run"} for s in self.tests]
        self._finish(v)
        return v

    def ready(self, proc: HarnessProcess) -> None:
        """The harness's first message (its entry point loaded, or not); it is stopped after."""
        message = proc.wait_ready()
        self._note_triton(message)
        if message.get("event") == "failed":
            raise Stop(*_failure(message))
        if message.get("event") != "ready":
            raise Stop("rejected", MALFORMED)

    def _call(self, proc: HarnessProcess, data: Any, audit: bool = False, meanwhile=None, null: bool = False):
        """One call of the kernel on `data`: (reply, charged µs, wall µs, layout). The inputs are
        written only while every process of the harness is stopped, right before the charged
        window (see HarnessProcess.call)."""
        import json

        layout, spans = self.arena.layout(data)
        if self._writable and not self.gpu:
            layout["writable"] = self._writable
        text = json.dumps(layout, sort_keys=True)
        if self._layouts.get(proc.pid) != text:
            proc.send({"op": "layout", "layout": layout})
            self._layouts[proc.pid] = text
        command = {"op": "call", "audit": audit, **({"null": True} if null else {})}
        reply, cpu_ns, wall_s = proc.call(command, lambda: self.arena.fill(layout, spans), meanwhile)
        if reply.get("ok") is not True:
            raise Stop(*(_failure(reply) if reply.get("ok") is False else ("rejected", MALFORMED)))
        if not isinstance(reply.get("outputs"), dict):
            raise Stop("rejected", MALFORMED)
        return reply, cpu_ns / 1e3, wall_s * 1e6, layout

    def _run_tests(self) -> list[dict[str, Any]]:
        from kerneldisc.evaluate.problem import salted_seed

        results = []
        for i, spec in enumerate(self.tests):
            problem = None
            for rep in TWO_REPS:
                seed = salted_seed(self.salt, spec, "test", i, rep)
                data = self._make_input(spec, seed)
                expected: dict[str, Any] = {}
                try:
                    # The reference runs on the judge's own copy while the candidate runs.
                    reply, _, _, layout = self._call(
                        self.candidate,
                        data,
                        audit=True,
                        meanwhile=lambda d=data, e=expected: e.update(self._expected(d)),
                    )
                except Stop as stop:
                    results.append({"spec": spec, "passed": False, "message": stop.message})
                    results += [
                        {"spec": s, "passed": False, "message": "not run"} for s in self.tests[i + 1 :]
                    ]
                    raise Stop(stop.status, f"on test {_label(spec)}: {stop.message}", results) from None
                if not expected:
                    expected.update(self._expected(data))
                problem = self._judge_output(reply["outputs"], data, layout, expected)
                if problem:
                    break
            results.append({"spec": spec, "passed": problem is None, "message": problem or ""})
        return results

    def _note_triton(self, message: dict[str, Any]) -> None:
        """Whether the candidate's kernels ran through Triton's interpreter: a label (for people
        and reports) its harness reports, OR-ed with what the caller read in its source."""
        count = message.get("triton_kernels")
        if self.device == "cpu" and isinstance(count, int) and count > 0:
            self.interpreted = True

    def _probe_writable(self) -> list[int]:
        """Which input leaves the reference writes into, found by running it once here on the
        first test's inputs (fresh values, never used for a verdict). On the CPU the inputs are
        mapped read-only in the harnesses; these leaves become private writable copies there, for
        the reference and the candidate alike: a task that hands its kernel an output buffer
        inside `data` (GPU MODE's convention) is then served as its authors intend, while writing
        into any other input still faults."""
        import kerneldisc.evaluate.check as check
        from kerneldisc.evaluate.problem import salted_seed

        specs = self.tests or self.benchmarks
        if not specs:
            return []
        data = self._make_input(specs[0], salted_seed(self.salt, specs[0], "probe", 0, 0))
        mutates = self._expected(data)["mutates"]
        return [i for i, (path, _) in enumerate(check.tensors(data, "input")) if path in mutates]

    def _make_input(self, spec: dict[str, Any], seed: int) -> Any:
        """The task's inputs for one call, made here with the task's own generator."""
        try:
            return self.problem.make_input(spec, seed, self.device)
        except Exception as exc:
            raise TaskFault(_input_failure(self.task, spec, self.device, exc)) from None

    def _expected(self, data: Any) -> dict[str, Any]:
        """The reference's answer on its own copy of the inputs, and what the reference itself does
        to them (a reference that updates a cache in place permits the candidate the same)."""
        import kerneldisc.evaluate.check as check

        ref_data = check.snapshot(data)
        try:
            out = self.problem.ref_kernel(ref_data)
        except Exception as exc:
            raise TaskFault(f"the reference failed: {type(exc).__name__}: {exc}") from None
        return {
            "output": out,
            "mutates": set(check.changed_inputs(data, ref_data)),
            "aliases": bool(check.aliased_inputs(out, ref_data)),
        }

    def _judge_output(self, described: dict[str, Any], data: Any, layout: dict[str, Any],
                      expected: dict[str, Any]) -> str | None:  # fmt: skip
        """None if the candidate's output is right; raises Stop for gaming, returns why not."""
        import kerneldisc.evaluate.check as check

        try:
            out, aliased = self._read_outputs(described, expected["output"])
        except _WrongOutput as wrong:
            return str(wrong)
        if aliased and not expected["aliases"]:
            raise Stop(
                "rejected", f"{aliased[0]} aliases the input's memory (the input itself or a view of it); return a new tensor"
            )  # fmt: skip
        mutated = [p for p in self._mutated(data, layout) if p not in expected["mutates"]]
        if mutated:
            return f"custom_kernel modified its input {mutated[0]}; inputs must come back unchanged"
        checker = self.problem.check_implementation
        try:
            problem = None
            if checker is None or getattr(self.task, "tolerances_given", True):
                problem = check.compare(out, expected["output"], self.task.rtol, self.task.atol,
                                        by_dtype=getattr(self.task, "tolerance_by_dtype", None))  # fmt: skip
            if problem is None and checker is not None:
                problem = _run_checker(checker, check.snapshot(data), out)
        except (ImportError, NameError) as exc:  # the checker cannot run at all: the task's fault
            raise TaskFault(f"check_implementation failed: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # an output odd enough to break the comparison is a wrong output
            problem = (
                f"output could not be compared with the reference: {type(exc).__name__}: {str(exc)[:200]}"
            )
        return problem

    def _read_outputs(self, described: dict[str, Any], reference_out: Any) -> tuple[Any, list[str]]:
        """The candidate's output, read by the judge from the stopped process's memory (through
        IPC on a GPU), and the paths of output tensors that overlap the inputs' region."""
        import torch

        import kerneldisc.evaluate.check as check
        from kerneldisc.evaluate.arena import LayoutError, overlaps_itself, rebuild, span_elements
        from kerneldisc.evaluate.memread import MemoryReadError, overlaps

        metas = described.get("tensors")
        if not isinstance(metas, list) or not all(isinstance(m, dict) for m in metas):
            raise Stop("rejected", MALFORMED)
        parsed = [_tensor_meta(meta) for meta in metas]
        placeholders = [torch.empty(p[1], dtype=p[0], device="meta") for p in parsed]
        try:  # the structure and shapes first, from the description alone: nothing is read for a wrong one
            shapes = rebuild(described.get("tree"), placeholders)
        except (LayoutError, KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError):
            raise Stop("rejected", MALFORMED) from None
        problem = check.structure_problem(shapes, reference_out)
        if problem:
            raise _WrongOutput(problem)
        # Every tensor described is one leaf of the output, once: nothing is read that the output
        # does not hold, and every leaf is checked against the inputs' region.
        if sorted(_tree_indices(described.get("tree"))) != list(range(len(parsed))):
            raise Stop("rejected", MALFORMED)
        leaf_paths = {id(t): path for path, t in check.tensors(shapes)}
        paths = [leaf_paths[id(t)] for t in placeholders]
        limit = 8 * sum(t.nbytes for _, t in check.tensors(reference_out)) + (1 << 20)
        tensors, spans = [], []
        for path, meta, (dtype, shape, stride, ptr) in zip(paths, metas, parsed, strict=True):
            if overlaps_itself(shape, stride):  # the judge's read would do the broadcast's work
                raise _WrongOutput(
                    f"{path} is a view whose elements share memory (stride {stride}); return a tensor "
                    "with one element per value"
                )
            nbytes = span_elements(torch.empty_strided(shape, stride, dtype=dtype, device="meta")) * (
                torch.empty(0, dtype=dtype).element_size()
            )
            if nbytes > limit:
                raise Stop(
                    "incorrect",
                    f"{path} spans {nbytes} bytes of memory, far more than the reference's output "
                    "(not read); return a compact tensor (.contiguous())",
                )
            try:
                if self.gpu:
                    tensors.append(self.reader.tensor(meta, dtype))
                else:
                    tensors.append(self.candidate.memory.tensor(ptr, dtype, shape, stride))
            except (MemoryReadError, RuntimeError) as exc:
                raise Stop(
                    "rejected", f"the output's memory could not be read ({exc}); return a plain tensor"
                ) from None
            spans.append((ptr, nbytes))
        out = rebuild(described.get("tree"), tensors)
        aliased: list[str] = []
        if not self.gpu:
            st = os.fstat(self.arena.fd)
            region = [m for m in self.candidate.memory.mappings()
                      if m.inode == st.st_ino and m.device == (os.major(st.st_dev), os.minor(st.st_dev))]  # fmt: skip
            aliased = [path for path, (ptr, n) in zip(paths, spans, strict=True) if overlaps(ptr, n, region)]
        elif described.get("aliased"):
            aliased = [str(p) for p in described["aliased"]]
        if self.gpu:
            self._settle(metas, tensors)
        return out, aliased

    def _settle(self, metas: list[dict[str, Any]], first: list) -> None:
        """On a GPU the harness's process is stopped but its kernels may not be: read the output
        again after a pause; bytes still changing mean work left running after the reply."""
        import torch

        time.sleep(0.002)
        for meta, before in zip(metas, first, strict=True):
            again = self.reader.tensor(meta, before.dtype)
            if not torch.equal(again.view(-1).view(torch.uint8), before.reshape(-1).view(torch.uint8)):
                raise Stop(
                    "rejected",
                    "the output kept changing after custom_kernel returned (GPU work left running)",
                )

    def _mutated(self, data: Any, layout: dict[str, Any]) -> list[str]:
        """Inputs whose bytes in the region differ from what the judge wrote (its own copy)."""
        import kerneldisc.evaluate.check as check

        mutated = []
        originals = check.tensors(data, "input")
        for (path, original), meta in zip(originals, layout["tensors"], strict=True):
            if not check.same_bytes(self.arena.read(meta), original):
                mutated.append(path)
        return mutated

    def _run_benchmarks(self, v: dict[str, Any], reference: dict[str, Any] | None) -> None:
        from kerneldisc.evaluate.verdict import RuntimeStats, aggregate, speedup_interval

        raw = [self._bench(self.candidate, j, spec, trusted=False) for j, spec in enumerate(self.benchmarks)]
        raw2 = None
        given = reference is not None
        if given:
            ref = [RuntimeStats(**b["runtime"]) for b in reference["benchmarks"]]
            handshakes = [b.get("handshake_us") for b in reference["benchmarks"]]
            if self._speedup(self._stats(raw, handshakes), ref) > self.settings["recheck_speedup_above"]:
                raw2 = [
                    self._bench(self.candidate, j, spec, trusted=False)
                    for j, spec in enumerate(self.benchmarks)
                ]
            self._compile_for_gpu(v)  # kernels first launched by the benchmarks' sizes
            self._end_candidate()
        else:
            # The reference is timed with no process of the candidate's left alive; a
            # re-measurement of the candidate, if one is needed, is therefore decided before.
            raw2 = [
                self._bench(self.candidate, j, spec, trusted=False) for j, spec in enumerate(self.benchmarks)
            ]
            self._compile_for_gpu(v)
            self._end_candidate()
            ref, handshakes = self._time_reference()
            if self._speedup(self._stats(raw, handshakes), ref) <= self.settings["recheck_speedup_above"]:
                raw2 = None  # measured for nothing: the first measurement is believable
        cand = self._stats(raw, handshakes)
        speedup = self._speedup(cand, ref)
        if raw2 is not None:
            # Believe a large speedup only if a second, independent measurement agrees: keep the
            # more modest of the two (the candidate re-timed; the reference re-timed here, or the
            # one given, timed once per run, again).
            ref2, handshakes2 = (ref, handshakes) if given else self._time_reference()
            cand2 = self._stats(raw2, handshakes2)
            v["rechecked"] = True
            if self._speedup(cand2, ref2) < speedup:
                cand, ref, speedup, handshakes = cand2, ref2, self._speedup(cand2, ref2), handshakes2
        v["benchmarks"] = [
            {"spec": spec, "runtime": asdict(c), "reference": asdict(r), "handshake_us": h}
            for spec, c, r, h in zip(self.benchmarks, cand, ref, handshakes, strict=True)
        ]
        low, high = speedup_interval(cand, ref, self.task.ranking_by)
        v.update(
            runtime_us=aggregate([s.mean_us for s in cand], self.task.ranking_by),
            reference_runtime_us=aggregate([s.mean_us for s in ref], self.task.ranking_by),
            speedup=speedup,
            speedup_ci=[low, high],
        )
        alike = "; not distinguishable from the reference" if low <= 1.0 <= high else ""
        v["message"] = (
            f"all {len(self.tests)} tests passed; speedup {speedup:.3f}x over the reference "
            f"(95% interval {low:.3g}-{high:.3g}x{alike})"
        )

    def _compile_for_gpu(self, v: dict[str, Any]) -> None:
        """The candidate's Triton kernels through a real GPU compiler (gpu_compile.py): on the CPU
        those launched since the last time, for every target; on a GPU, as Triton compiled them.
        A kernel the target's compiler refuses is a compile_error."""
        targets = self._gpu_targets()
        if not targets and not self.gpu:
            return
        self._compiling = [f"sm_{t}" for t in targets] if not self.gpu else []
        if self.gpu:
            reply = self._harness_reply({"op": "gpu_compile", "targets": targets})
            raw = reply.get("gpu_compile")
        else:
            raw = self._compile_cached(targets)
        self._compiling = []  # kept on a timeout: the message names what ran out of time
        entries = [_compile_entry(e) for e in (raw if isinstance(raw, list) else [])[:MAX_COMPILE_ENTRIES]
                   if isinstance(e, dict)]  # fmt: skip
        known = {json.dumps(e, sort_keys=True) for e in v.setdefault("gpu_compile", [])}
        room = MAX_COMPILE_ENTRIES - len(v["gpu_compile"])
        v["gpu_compile"] += [e for e in entries if json.dumps(e, sort_keys=True) not in known][: max(room, 0)]
        refused = next((e for e in entries if e["ok"] is False), None)
        if refused is not None and not self.gpu:
            raise Stop(
                "compile_error",
                f"Triton kernel {refused['kernel']} runs under the interpreter but does not compile for "
                f"{refused['target']}: {refused['error']}",
            )

    def _harness_reply(self, command: dict[str, Any]) -> dict[str, Any]:
        reply, _, _ = self.candidate.run(command)
        if reply.get("ok") is not True:
            raise Stop(*(_failure(reply) if reply.get("ok") is False else ("rejected", MALFORMED)))
        return reply

    def _compile_cached(self, targets: list[int]) -> list[dict[str, Any]]:
        """The launches since the last time, compiled by the candidate's helper, except those whose
        kernel text, specialisation and target were compiled before (by any evaluation on this
        machine): those come from the judge's own cache. Only successful compilations are
        cached, so a candidate that lies about its own can at most spare an identical kernel the
        check (judged by the interpreter alone, as without it), never refuse one."""
        from kerneldisc.evaluate.gpu_compile import cache_key

        launches = self._harness_reply({"op": "gpu_launches"}).get("launches")
        launches = [s for s in (launches if isinstance(launches, list) else []) if isinstance(s, dict)]
        cached: list[dict[str, Any]] = []
        todo: list[int] = []
        for i, spec in enumerate(launches[:MAX_COMPILE_ENTRIES]):
            hits = [_COMPILE_CACHE.get(cache_key(spec, t)) for t in targets]
            if all(hits):
                cached += [{**hit, "kernel": str(spec.get("kernel", "?"))} for hit in hits]
            else:
                todo.append(i)
        fresh: list[dict[str, Any]] = []
        if todo:
            raw = self._harness_reply({"op": "gpu_compile", "indices": todo, "targets": targets}).get(
                "gpu_compile"
            )
            fresh = [e for e in (raw if isinstance(raw, list) else []) if isinstance(e, dict)]
            for j, entry in enumerate(fresh[: len(todo) * len(targets)]):
                spec, target = launches[todo[j // len(targets)]], targets[j % len(targets)]
                if (
                    entry.get("ok") is True
                    and entry.get("target") == f"sm_{target}"
                    and entry.get("kernel") == spec.get("kernel")
                ):
                    _COMPILE_CACHE.put(cache_key(spec, target), _compile_entry(entry))
        return cached + fresh

    def _gpu_targets(self) -> list[int]:
        from kerneldisc.evaluate.gpu_compile import parse_target

        if self.gpu:
            return []
        names = list(self.settings.get("gpu_compile_targets") or [])
        if names:  # a task's own targets add to the evaluator's; an empty setting turns both off
            names += [t for t in getattr(self.task, "gpu_compile_targets", None) or [] if t not in names]
        return sorted({parse_target(n) for n in names})

    def _speedup(self, cand, ref) -> float:
        from kerneldisc.evaluate.verdict import aggregate

        ranking = self.task.ranking_by
        return aggregate([s.mean_us for s in ref], ranking) / aggregate([s.mean_us for s in cand], ranking)

    def _stats(self, raw: list[Samples], handshakes: list[float | None]) -> list:
        from kerneldisc.evaluate.verdict import RuntimeStats

        return [RuntimeStats.from_times(r.charged(h)) for r, h in zip(raw, handshakes, strict=True)]

    def _bench(self, proc: HarnessProcess, index: int, spec: dict[str, Any], trusted: bool) -> Samples:
        """One benchmark's calls, measured (see Samples for what each call is charged)."""
        from kerneldisc.evaluate.problem import salted_seed
        from kerneldisc.evaluate.protocol import RepeatPolicy, rel_stderr

        policy = RepeatPolicy.from_settings(self.settings)
        salt = self.salt + ("-reference" if trusted else "")
        fraction = float(self.settings["check_fraction"])
        for w in range(policy.warmup):
            data = self._make_input(spec, salted_seed(salt, spec, "bench", index, -1 - w))
            self._call(proc, data)
        samples = Samples(gpu=self.gpu)
        rep = redone = 0
        while rep < policy.max_repeats:
            data = self._make_input(spec, salted_seed(salt, spec, "bench", index, rep))
            reply, cpu_us, wall_us, layout = self._call(proc, data)
            measured = reply.get("event_us") if self.gpu else cpu_us
            if (
                not isinstance(measured, (int, float))
                or isinstance(measured, bool)
                or not math.isfinite(measured)
            ):
                raise Stop("rejected", MALFORMED)
            if measured <= 0:
                # A call charged nothing: work done where the charge cannot see it, or (seen once
                # on a loaded machine, for the reference) an accounting artefact of the CPU
                # charge. There, the call is made again, on fresh inputs (a repeat of the same
                # ones could be answered from a cache), a few times; only a persistent zero is a
                # verdict. On a GPU the time is the harness's own event time: never made again.
                redone += 1
                if self.gpu or redone > ZERO_CALL_RETRIES:
                    raise Stop("rejected", f"benchmark {_label(spec)}: a call that took no time at all")
                salt = f"{salt}-redo{redone}"
                continue
            samples.times.append(float(measured))
            samples.walls.append(wall_us)
            # Whether this call's output is checked is drawn now, after it returned: no call can
            # know beforehand that it goes unchecked (the first one always is).
            if not trusted and (rep == 0 or _DRAW.random() < fraction):
                problem = self._judge_output(reply["outputs"], data, layout, self._expected(data))
                if problem:
                    raise Stop("incorrect", f"timed call {rep} of benchmark {_label(spec)}: {problem}")
            rep += 1
            # The budget is charged time, not the judge's clock: a candidate that sleeps (no CPU)
            # cannot end a benchmark early with few calls, most of them unchecked.
            if rep >= policy.min_repeats and (
                rel_stderr(samples.times) < policy.target_rel_stderr
                or sum(samples.times) * 1e-6 >= policy.budget_s
            ):
                break
        if not trusted:  # defence in depth: what the candidate patched in its own process
            reply, _, _ = proc.run({"op": "audit"})
            if reply.get("ok") is not True:
                raise Stop(*_failure(reply))
            self._note_triton(reply)
        return samples

    def _null_floor(self, proc: HarnessProcess, index: int, spec: dict[str, Any]) -> float:
        """What a call costs the reference's harness when no kernel runs (it hands back a tensor it
        holds), a low quantile over NULL_CALLS calls on this benchmark's inputs. A candidate's call
        is never charged less: one that replaces its harness's per-call code with something
        leaner saves at most its own kernel's time below this, never the harness work the
        reference pays. Honest calls cost this plus their kernel, so the floor leaves them be."""
        from kerneldisc.evaluate.problem import salted_seed

        charges = []
        for rep in range(NULL_CALLS):
            data = self._make_input(spec, salted_seed(self.salt + "-null", spec, "bench", index, rep))
            charges.append(self._call(proc, data, null=True)[1])
        return _quantile(charges, _FLOOR_QUANTILE)

    def _end_candidate(self) -> None:
        """Let the candidate's process go and kill whatever it left running."""
        proc = self.candidate
        proc.close()
        keep = frozenset({self.reference_proc.pid}) if self.reference_proc else frozenset()
        if kill_orphans(keep=keep):
            raise Stop(
                "rejected",
                "the candidate left processes running that could not be killed (a helper forking itself "
                "faster than it can be stopped); nothing it does can be timed fairly",
            )

    def _finish(self, v: dict[str, Any]) -> None:
        """Close the candidate's process group, then keep its output tails."""
        proc = self.candidate
        proc.close()
        limit = int(self.request["config"]["output_tail_bytes"])
        v["stdout_tail"], v["stderr_tail"] = proc.tails(limit)
        if v["status"] == "crash" and "before delivering" in v["message"]:
            lines = [line for line in v["stderr_tail"].splitlines() if line.strip()]
            # faulthandler's report starts with "Fatal Python error"; its first frames are the candidate's
            start = next((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), None)
            shown = lines[start : start + 5] if start is not None else lines[-6:]
            if shown:
                v["message"] += "; stderr shows:\n" + "\n".join(shown)


def _pick_core() -> int | None:
    """The one CPU the harness processes run on: the last the judge may use. The judge moves to
    the others (when there are others), so its own work never shares the harness's caches."""
    try:
        allowed = os.sched_getaffinity(0)
        core = max(allowed)
        if len(allowed) > 1:
            os.sched_setaffinity(0, allowed - {core})
        return core
    except (AttributeError, OSError, ValueError):
        return None


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _tensor_meta(meta: dict[str, Any]):
    """(dtype, shape, stride, ptr) of a tensor the harness described, validated: it comes from
    the candidate's process."""
    import torch

    name = str(meta.get("dtype"))
    dtype = getattr(torch, name, None) if name in _DTYPES else None
    shape, stride, ptr = meta.get("shape"), meta.get("stride"), meta.get("ptr")
    ints = lambda xs: (
        isinstance(xs, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in xs)
    )
    if (not isinstance(dtype, torch.dtype) or not ints(shape) or not ints(stride) or len(shape) != len(stride)
            or not isinstance(ptr, int) or isinstance(ptr, bool) or len(shape) > 16):  # fmt: skip
        raise Stop("rejected", MALFORMED)
    return dtype, shape, stride, ptr


# Dense dtypes whose bytes the judge can read and compare (quantized and other exotic ones: no).
_DTYPES = frozenset(
    "float64 float32 float16 bfloat16 complex128 complex64 complex32 int64 int32 int16 int8 uint8 uint16 "
    "uint32 uint64 bool float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz".split()
)


def _failure(reply: dict[str, Any]) -> tuple[str, str]:
    """(status, message) of a failure the harness reports, checked: it runs candidate code."""
    status, message = reply.get("status"), reply.get("message")
    if status not in _CHILD_STATUSES or not isinstance(message, str):
        raise Stop("rejected", MALFORMED)
    return status, message


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


def _installation_readable(task) -> bool:
    """Whether a user that owns nothing can read what a harness loads: Python and its packages,
    kerneldisc, the task's folder."""
    import sys

    import kerneldisc
    from kerneldisc.evaluate.sandbox import readable_by_anyone

    paths = [sys.executable, sys.prefix, sys.base_prefix, os.path.dirname(kerneldisc.__file__),
             *(p for p in sys.path if p), *([str(task.path)] if getattr(task, "path", None) else [])]  # fmt: skip
    return readable_by_anyone(paths)


def _tree_indices(node: Any) -> list[int]:
    """The tensor indices an output tree refers to, each as often as it appears."""
    if not isinstance(node, dict) or len(node) != 1:
        return []
    ((kind, value),) = node.items()
    if kind == "t":
        return [value]
    if kind in ("tuple", "list") and isinstance(value, list):
        return [i for v in value for i in _tree_indices(v)]
    if kind == "dict" and isinstance(value, list):
        return [
            i for pair in value if isinstance(pair, list) and len(pair) == 2 for i in _tree_indices(pair[1])
        ]
    return []


def _label(spec: dict[str, Any]) -> str:
    return "{" + spec_label(spec) + "}"
