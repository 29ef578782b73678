"""Evaluations on a Ray cluster: one long-lived evaluator (a Ray actor) per GPU, or per node on
the CPU, each running the ordinary evaluator (`evaluate()`, its fork server, judge and sandboxed
harnesses) on its own node. The driver only hands out code and collects verdicts.

Rewards compare like with like: the reference is timed once per *device group* (a GPU model, or
one CPU machine) on an evaluator of that group, and each candidate's speedup is against the
reference of the group that judged it. Groups are kept apart, never refused: on a mixed cluster a
kernel judged on an H100 is compared with the reference timed on an H100.

Faults: an evaluator whose worker or node dies mid-evaluation is replaced (Ray places the new one
wherever resources are left) and the evaluation is run again on another evaluator; a candidate
whose evaluation has killed its worker twice is judged `crash`. An evaluation is answered once:
each rollout gets exactly one verdict.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kerneldisc import __version__
from kerneldisc.errors import KerneldiscError
from kerneldisc.evaluate import EvalConfig, ReferenceTiming, Verdict
from kerneldisc.ray_cluster import (
    TaskBundle,
    bundle_task,
    describe,
    evaluator_count,
    init,
    require_ray,
    shape,
    source_digest,
    unpack_task,
)
from kerneldisc.task import Task

log = logging.getLogger(__name__)

WORKER_DEATHS_TO_CRASH = 2  # a candidate whose evaluation killed its worker this often: `crash`
START_TIMEOUT_S = 180.0  # an evaluator not placed and ready by then is given up


class EvaluatorActor:
    """One evaluation slot on one node (the body of a Ray actor; see `RayEvaluators._spawn`).
    Holds a warm fork server between evaluations, like a local run's evaluator does."""

    def __init__(self, digest: str, kind: str) -> None:
        mine = source_digest()
        if mine != digest:
            raise RuntimeError(
                f"kerneldisc on {socket.gethostname()} differs from the driver's (source {mine} vs "
                f"{digest}): install the same version on every node"
            )
        self.device = "cuda:0" if kind == "cuda" else "cpu"  # Ray's CUDA_VISIBLE_DEVICES: its one GPU
        self.tasks: dict[str, Task] = {}

    def identity(self) -> dict[str, Any]:
        import ray

        host = socket.gethostname()
        name = _gpu_name() if self.device != "cpu" else f"CPU of {host}"
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "host": host,
            "device": self.device,
            "device_name": name,
            # One reference per group: a GPU model, or a CPU machine (timings of one machine's
            # cores compare; another machine's do not).
            "group": name if self.device != "cpu" else f"cpu@{host}",
            "version": __version__,
        }

    def reference(self, bundle: TaskBundle, cfg: EvalConfig) -> ReferenceTiming:
        from kerneldisc.evaluate import measure_reference

        return measure_reference(self._task(bundle), replace(cfg, device=self.device))

    def evaluate(self, bundle: TaskBundle, code: str, cfg: EvalConfig, reference: ReferenceTiming) -> Verdict:
        from kerneldisc.evaluate import evaluate

        return evaluate(self._task(bundle), code, replace(cfg, device=self.device), reference=reference)

    def _task(self, bundle: TaskBundle) -> Task:
        if bundle.digest not in self.tasks:
            self.tasks[bundle.digest] = unpack_task(bundle)
        return self.tasks[bundle.digest]


def _gpu_name() -> str:
    """The model of the GPU Ray gave this actor, without CUDA (the evaluator's caller side never
    imports torch)."""
    import pynvml
    import ray

    ids = ray.get_gpu_ids()
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(int(ids[0]) if ids else 0)
        name = pynvml.nvmlDeviceGetName(handle)
        return name.decode() if isinstance(name, bytes) else str(name)
    finally:
        pynvml.nvmlShutdown()


@dataclass
class Slot:
    handle: Any
    info: dict[str, Any]


@dataclass
class Judged:
    verdict: Verdict
    queue_wait_s: float
    evaluating_s: float


class RayEvaluators:
    """The cluster's evaluators, shared by every run and bench entry of this process. Thread-safe:
    callers on several threads each take a free evaluator, wait when none is free, and give it
    back."""

    def __init__(self, address: str, kind: str, workers: int = 0, echo: Callable[[str], None] = print,
                 actor: type = EvaluatorActor) -> None:  # fmt: skip
        self.ray = require_ray()
        init(address)
        self.address, self.kind, self.echo = address, kind, echo
        self.count = evaluator_count(kind, workers, shape(), address)
        self.digest = source_digest()
        self._actor_class = self.ray.remote(actor)
        self._idle: queue.Queue[Slot] = queue.Queue()
        self._lock = threading.Lock()
        self._alive: dict[int, Slot] = {}
        self._starting = 0
        self._bundles: dict[str, tuple[TaskBundle, Any]] = {}
        self._references: dict[tuple[str, str], ReferenceTiming] = {}
        self._reference_locks: dict[tuple[str, str], threading.Lock] = {}
        self._errors: list[str] = []
        starts = [self._start_one() for _ in range(self.count)]
        for thread in starts:
            thread.join()
        if not self._alive:
            reason = self._errors[0] if self._errors else "none became ready"
            raise _ClusterError(f"--ray {address}: no evaluator could start ({reason})")
        echo(f"ray: {len(self._alive)} evaluator(s) on {self._nodes()} node(s): " + "; ".join(self.where()))

    # --- evaluators -------------------------------------------------------------------------
    def alive(self) -> int:
        with self._lock:
            return len(self._alive)

    def groups(self) -> set[str]:
        """The device groups (GPU models, CPU machines) of the evaluators alive now."""
        with self._lock:
            return {s.info["group"] for s in self._alive.values()}

    def where(self) -> list[str]:
        with self._lock:
            return [describe(s.info) for s in self._alive.values()]

    def _nodes(self) -> int:
        with self._lock:
            return len({s.info["node"] for s in self._alive.values()})

    def _start_one(self) -> threading.Thread:
        with self._lock:
            self._starting += 1
        thread = threading.Thread(target=self._spawn, name="kerneldisc-ray-start", daemon=True)
        thread.start()
        return thread

    def _spawn(self) -> None:
        ray = self.ray
        try:
            options: dict[str, Any] = {
                "num_cpus": 1,
                "num_gpus": 1 if self.kind == "cuda" else 0,
                "scheduling_strategy": "SPREAD",
                "max_restarts": 0,  # a dead evaluator is replaced by this class, which knows why
                "max_concurrency": 1,
            }
            handle = self._actor_class.options(**options).remote(self.digest, self.kind)
            info = ray.get(handle.identity.remote(), timeout=START_TIMEOUT_S)
        except BaseException as exc:  # incl. the SystemExit Ray raises here when it shuts down meanwhile
            self._errors.append(str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc))
            log.warning("a Ray evaluator could not start: %s", exc)
            with self._lock:
                self._starting -= 1
            return
        slot = Slot(handle, info)
        with self._lock:
            self._starting -= 1
            self._alive[id(slot)] = slot
        self._idle.put(slot)

    def _take(self) -> Slot:
        while True:
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    if not self._alive and not self._starting:
                        raise _ClusterError(
                            f"no evaluator is left in the Ray cluster at {self.address} "
                            f"(last error: {self._errors[-1] if self._errors else 'none'})"
                        ) from None

    def _lost(self, slot: Slot, exc: BaseException) -> None:
        """An evaluator died (its worker or its node): forget it, start a replacement."""
        with self._lock:
            self._alive.pop(id(slot), None)
        self.echo(f"ray: evaluator on {describe(slot.info)} lost ({type(exc).__name__}); starting another")
        try:
            self.ray.kill(slot.handle)
        except Exception:
            pass
        self._start_one()

    # --- references ---------------------------------------------------------------------------
    def bundle(self, task: Task) -> tuple[TaskBundle, Any]:
        key = task.files_digest or task.name
        with self._lock:
            if key not in self._bundles:
                bundle = bundle_task(task)
                self._bundles[key] = (bundle, self.ray.put(bundle))
            return self._bundles[key]

    def known_references(self, task: Task) -> dict[str, ReferenceTiming]:
        bundle, _ = self.bundle(task)
        with self._lock:
            return {
                group: ref for (digest, group), ref in self._references.items() if digest == bundle.digest
            }

    def add_references(self, task: Task, references: dict[str, ReferenceTiming]) -> None:
        """References timed earlier (a resumed run's): every reward keeps its yardstick."""
        bundle, _ = self.bundle(task)
        with self._lock:
            for group, ref in references.items():
                self._references.setdefault((bundle.digest, group), ref)

    def reference(self, task: Task, cfg: EvalConfig, slot: Slot | None = None,
                  on_new: Callable[[str, ReferenceTiming], None] | None = None) -> tuple[str, ReferenceTiming]:  # fmt: skip
        """The reference of the group `slot` belongs to (any free evaluator's when None), timed
        there the first time it is asked for; `on_new(group, reference)` hears of it every time."""
        bundle, ref_obj = self.bundle(task)
        own = slot is None
        while True:
            if own:
                slot = self._take()
            group = slot.info["group"]
            key = (bundle.digest, group)
            with self._lock:
                lock = self._reference_locks.setdefault(key, threading.Lock())
            try:
                with lock:
                    known = self._references.get(key)
                    if known is None:
                        self.echo(f"timing the reference of {task.name} on {describe(slot.info)} ...")
                        try:
                            known = self.ray.get(slot.handle.reference.remote(ref_obj, cfg))
                        except KerneldiscError as exc:  # the task's own error, said as it would be locally
                            raise _unwrapped(exc) from None
                        with self._lock:
                            self._references[key] = known
                        self.echo(f"reference on {slot.info['device_name']}: {known.runtime_us:.1f} µs")
                    if on_new is not None:  # the caller keeps each group it meets (once, its affair)
                        on_new(group, known)
                    return group, known
            except _LOST_ERRORS as exc:
                self._lost(slot, exc)
                if not own:
                    raise _EvaluatorLost from exc
                own = True
            finally:
                if own and id(slot) in self._alive:
                    self._idle.put(slot)

    # --- evaluations ---------------------------------------------------------------------------
    def judge(self, task: Task, code: str, cfg: EvalConfig,
              on_new_reference: Callable[[str, ReferenceTiming], None] | None = None) -> Judged:  # fmt: skip
        """One candidate, on whichever evaluator is free first; every outcome is a verdict,
        except the run's own errors (KerneldiscError), which stop the run as they would locally."""
        _, ref_obj = self.bundle(task)
        deaths: list[str] = []
        waited = busy = 0.0
        while True:
            asked = time.monotonic()
            slot = self._take()
            started = time.monotonic()
            waited += started - asked
            try:
                try:
                    group, reference = self.reference(task, cfg, slot, on_new_reference)
                except _EvaluatorLost:
                    continue  # nothing of the candidate's ran: not its fault
                verdict = self.ray.get(slot.handle.evaluate.remote(ref_obj, code, cfg, reference))
            except _LOST_ERRORS as exc:
                busy += time.monotonic() - started
                deaths.append(describe(slot.info))
                self._lost(slot, exc)
                if len(deaths) >= WORKER_DEATHS_TO_CRASH:
                    verdict = Verdict(
                        task=task.name, candidate="<code>", device=cfg.device, status="crash",
                        message=f"its evaluation killed the evaluator's worker {len(deaths)} times "
                                f"({'; '.join(deaths)})",
                    )  # fmt: skip
                    return Judged(verdict, waited, busy)
                continue
            except KerneldiscError as exc:
                self._idle.put(slot)
                raise _unwrapped(exc) from None
            except Exception as exc:  # the evaluator's machinery failed once: a recorded failure
                self._idle.put(slot)
                log.exception("evaluator failed on %s", describe(slot.info))
                verdict = Verdict(task=task.name, candidate="<code>", device=cfg.device, status="crash",
                                  message=f"evaluator failed: {exc!r}")  # fmt: skip
                return Judged(verdict, waited, busy + time.monotonic() - started)
            busy += time.monotonic() - started
            self._idle.put(slot)
            verdict.judged_by = {**{k: slot.info[k] for k in ("node", "host", "device_name", "group")},
                                 "attempts": len(deaths) + 1}  # fmt: skip
            return Judged(verdict, waited, busy)

    def close(self) -> None:
        with self._lock:
            slots = list(self._alive.values())
            self._alive.clear()
        for slot in slots:
            try:
                self.ray.kill(slot.handle)
            except Exception:
                pass


class _ClusterError(KerneldiscError):
    """The cluster cannot evaluate at all (no evaluator left): the run stops at its last step."""


class _EvaluatorLost(Exception):
    pass


def _unwrapped(exc: KerneldiscError) -> KerneldiscError:
    """Ray re-raises an actor's exception as a subclass of both RayTaskError and its own type,
    with the remote traceback in its message; the user gets the error itself, as without Ray."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, KerneldiscError) else exc


def _lost_errors() -> tuple[type[BaseException], ...]:
    import ray.exceptions as rex

    names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError")
    return tuple(getattr(rex, n) for n in names if hasattr(rex, n))


try:  # only reachable once Ray is importable; without it no evaluator of this module exists
    _LOST_ERRORS: tuple[type[BaseException], ...] = _lost_errors()
except ImportError:  # pragma: no cover - kerneldisc without the ray extra
    _LOST_ERRORS = ()


_shared: dict[tuple[str, str], RayEvaluators] = {}
_shared_lock = threading.Lock()


def connect(address: str, kind: str, workers: int = 0, echo: Callable[[str], None] = print) -> RayEvaluators:
    """The process's evaluators for (address, kind), started on first use: a bench suite's
    entries and their discoveries share one set rather than competing for the cluster."""
    with _shared_lock:
        found = _shared.get((address, kind))
        if found is None or not found.alive():
            found = _shared[(address, kind)] = RayEvaluators(address, kind, workers, echo)
        return found


def disconnect() -> None:
    """Stop every evaluator and leave the cluster (tests; the end of a process does it too)."""
    with _shared_lock:
        for evaluators in _shared.values():
            evaluators.close()
        _shared.clear()
    from kerneldisc.ray_cluster import shutdown

    shutdown()
