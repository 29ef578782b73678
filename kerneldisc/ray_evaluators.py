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

import atexit
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kerneldisc import __version__
from kerneldisc.errors import KerneldiscError, TaskError
from kerneldisc.evaluate import EvalConfig, ReferenceTiming, Verdict
from kerneldisc.ray_cluster import (
    TaskBundle,
    bundle_task,
    describe,
    evaluator_count,
    first_line,
    init,
    require_ray,
    shape,
    source_digest,
    unpack_task,
)
from kerneldisc.task import Task

log = logging.getLogger(__name__)

WORKER_DEATHS_TO_CRASH = 2  # a candidate whose evaluation killed its worker this often: `crash`
REFERENCE_LOSSES = 3  # a task whose reference timing killed this many evaluators: the task's error
START_TIMEOUT_S = 180.0  # an evaluator not placed and ready by then is given up
REFILL_S = 30.0  # how often evaluators missing from the pool are started again
PING_TIMEOUT_S = 30.0


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

    def ping(self) -> bool:
        return True

    def _task(self, bundle: TaskBundle) -> Task:
        """The task as the driver sent it, every time: its cached files are compared with the
        bundle's and restored where a candidate judged here earlier rewrote them."""
        return unpack_task(bundle)


def _gpu_name() -> str:
    """The model of the GPU Ray gave this actor, without CUDA (the evaluator's caller side never
    imports torch): by NVML index when Ray names it by number (the actor runs with
    CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML's order), by UUID when by GPU or MIG UUID."""
    import pynvml
    import ray

    ids = [str(i) for i in ray.get_gpu_ids()] or ["0"]
    try:
        pynvml.nvmlInit()
    except Exception:
        return "GPU (model unknown: NVML unavailable)"
    try:
        first = ids[0]
        handle = (
            pynvml.nvmlDeviceGetHandleByIndex(int(first))
            if first.isdigit()
            else pynvml.nvmlDeviceGetHandleByUUID(first)
        )
        name = pynvml.nvmlDeviceGetName(handle)
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:
        return f"GPU {ids[0]} (model unknown: {type(exc).__name__})"
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
        self._failed_starts = 0
        self._closed = False
        self._spawners: list[threading.Thread] = []
        # Before Ray's own exit handler (registered by ray.init, earlier: atexit runs last-in
        # first-out), so no thread of ours is inside Ray when it shuts down.
        atexit.register(self.close)
        self._refilled = time.monotonic()
        self._reference_losses: dict[tuple[str, str], int] = {}
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

    def _start_one(self, reserved: bool = False) -> threading.Thread:
        if not reserved:
            with self._lock:
                self._starting += 1
        thread = threading.Thread(target=self._spawn, name="kerneldisc-ray-start", daemon=True)
        with self._lock:
            self._spawners = [t for t in self._spawners if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _spawn(self) -> None:
        try:
            options: dict[str, Any] = {
                "num_cpus": 1,
                "num_gpus": 1 if self.kind == "cuda" else 0,
                "scheduling_strategy": "SPREAD",
                "max_restarts": 0,  # a dead evaluator is replaced by this class, which knows why
                "max_concurrency": 1,
            }
            if self.kind == "cuda":  # CUDA numbers GPUs as NVML does, so _gpu_name reads the right one
                options["runtime_env"] = {"env_vars": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}}
            handle = self._actor_class.options(**options).remote(self.digest, self.kind)
            info = self._ready(handle)
        except BaseException as exc:  # incl. the SystemExit Ray raises here when it shuts down meanwhile
            self._errors.append(str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc))
            log.warning("a Ray evaluator could not start: %s", exc)
            with self._lock:
                self._starting -= 1
                self._failed_starts += 1
            return
        slot = Slot(handle, info)
        with self._lock:
            self._starting -= 1
            self._failed_starts = 0
            closed = self._closed
            if not closed:
                self._alive[id(slot)] = slot
        if closed:  # a replacement that arrived after close(): it must not hold a node's CPU or GPU
            self.ray.kill(handle)
            return
        self._idle.put(slot)

    def _ready(self, handle) -> dict[str, Any]:
        """The new evaluator's identity once it is placed and started. Waited for in short slices,
        so that close() never leaves this thread inside Ray while Ray shuts down (Ray's core
        worker crashes the process when a thread still waits in it)."""
        ray = self.ray
        pending = handle.identity.remote()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._closed:
                ray.kill(handle)
                raise RuntimeError("closed while the evaluator was starting")
            done, _ = ray.wait([pending], timeout=0.5)
            if done:
                return ray.get(pending)
        ray.kill(handle)
        raise TimeoutError(f"not placed and ready within {START_TIMEOUT_S:g} s")

    def _take(self, avoid: frozenset[str] = frozenset()) -> Slot:
        """A free evaluator; one on a node in `avoid` (where this candidate already failed) only
        when no other node has an evaluator alive."""
        passed = 0
        while True:
            with self._lock:
                if self._closed:
                    raise _ClusterError("the Ray evaluators were closed")
            try:
                slot = self._idle.get(timeout=1.0)
            except queue.Empty:
                self._refill()
                with self._lock:
                    if not self._alive and not self._starting and self._failed_starts:
                        raise _ClusterError(
                            f"no evaluator is left in the Ray cluster at {self.address} "
                            f"(last error: {self._errors[-1] if self._errors else 'none'})"
                        ) from None
                continue
            if slot.info["node"] not in avoid or passed > 2 * self.count or not self._elsewhere(avoid):
                return slot
            self._idle.put(slot)  # another node's evaluator may free up: let it take this one
            passed += 1
            time.sleep(0.05)

    def _elsewhere(self, avoid: frozenset[str]) -> bool:
        with self._lock:
            return any(s.info["node"] not in avoid for s in self._alive.values())

    def _refill(self) -> None:
        """Evaluators whose replacement could not be placed (a node preempted, rebooting) are
        tried again now and then, so a long run's pool grows back when nodes return."""
        with self._lock:
            missing = self.count - len(self._alive) - self._starting
            # With none left, the replacement _lost started has failed: the cluster is gone.
            if not self._alive or missing <= 0 or time.monotonic() - self._refilled < REFILL_S:
                return
            self._refilled = time.monotonic()
            self._starting += missing
        for _ in range(missing):
            self._start_one(reserved=True)

    def _lost(self, slot: Slot, why: BaseException | str) -> None:
        """An evaluator died or failed (its worker, its node): forget it, start a replacement."""
        with self._lock:  # one step, so no caller sees neither it nor its replacement
            self._alive.pop(id(slot), None)
            self._starting += 1
        reason = why if isinstance(why, str) else type(why).__name__
        self.echo(f"ray: evaluator on {describe(slot.info)} lost ({reason}); starting another")
        try:
            self.ray.kill(slot.handle)
        except Exception:
            pass
        self._start_one(reserved=True)

    def _answers(self, slot: Slot) -> bool:
        """Whether an idle evaluator is still there: one that died while idle (its node lost
        between steps) must not count against the next candidate it would have judged."""
        try:
            self.ray.get(slot.handle.ping.remote(), timeout=PING_TIMEOUT_S)
            return True
        except Exception:
            return False

    # --- references ---------------------------------------------------------------------------
    def bundle(self, task: Task) -> tuple[TaskBundle, Any]:
        # Two KernelBench tasks from one file differ only in their options (task.extra).
        key = f"{task.files_digest or task.name}:{sorted(task.extra.items(), key=str)!r}"
        with self._lock:
            found = self._bundles.get(key)
        if found is None:
            bundle = bundle_task(task)  # reads the files: outside the lock
            with self._lock:
                found = self._bundles.setdefault(key, (bundle, self.ray.put(bundle)))
        return found

    def reference(self, task: Task, cfg: EvalConfig, references: dict[str, ReferenceTiming],
                  slot: Slot | None = None,
                  on_new: Callable[[str, ReferenceTiming], None] | None = None) -> tuple[str, ReferenceTiming]:  # fmt: skip
        """The reference of the device group `slot` belongs to (any free evaluator's when None).
        `references` is the caller's own (a run's references.json): what it holds is used as it
        is, so a resumed run keeps its yardsticks; a group it lacks is taken from this process's
        earlier timings of the same task (bench entries share them) or timed now on `slot`, then
        added to it, and `on_new(group, reference)` hears of it."""
        bundle, ref_obj = self.bundle(task)
        own = slot is None
        while True:
            if own:
                slot = self._take()
            group = slot.info["group"]
            key = (bundle.digest, group)
            try:
                known = references.get(group)
                if known is None:
                    known = self._timed(task, cfg, slot, key, ref_obj)
                    if references.setdefault(group, known) is known and on_new is not None:
                        on_new(group, known)
                return group, references[group]
            except (*_LOST_ERRORS, _NodeFailed) as exc:
                self._lost(slot, exc)
                with self._lock:
                    self._reference_losses[key] = losses = self._reference_losses.get(key, 0) + 1
                if losses >= REFERENCE_LOSSES:
                    what = (
                        f"failed on {losses} evaluators ({exc})"
                        if isinstance(exc, _NodeFailed)
                        else (f"killed {losses} evaluators")
                    )
                    raise TaskError(
                        f"timing the reference of {task.name} {what}, the last on {describe(slot.info)}; "
                        "the task's reference cannot run there"
                    ) from None
                if not own:
                    raise _EvaluatorLost from exc
            finally:
                if own and id(slot) in self._alive:
                    self._idle.put(slot)

    def _timed(
        self, task: Task, cfg: EvalConfig, slot: Slot, key: tuple[str, str], ref_obj
    ) -> ReferenceTiming:
        with self._lock:
            lock = self._reference_locks.setdefault(key, threading.Lock())
        with lock:  # one timing per group and task; the group's other evaluators wait for it
            known = self._references.get(key)
            if known is not None:
                return known
            self.echo(f"timing the reference of {task.name} on {describe(slot.info)} ...")
            try:
                known = self.ray.get(slot.handle.reference.remote(ref_obj, cfg))
            except _LOST_ERRORS:
                raise
            except KerneldiscError as exc:  # the task's own error, said as it would be locally
                raise _unwrapped(exc) from None
            except Exception as exc:  # the node could not run it at all (its disk, its Python)
                raise _NodeFailed(f"{type(exc).__name__}: {first_line(exc)}") from None
            with self._lock:
                self._references[key] = known
                self._reference_losses.pop(key, None)
            self.echo(f"reference on {slot.info['device_name']}: {known.runtime_us:.1f} µs")
            return known

    # --- evaluations ---------------------------------------------------------------------------
    def judge(self, task: Task, code: str, cfg: EvalConfig, references: dict[str, ReferenceTiming],
              on_new_reference: Callable[[str, ReferenceTiming], None] | None = None) -> Judged:  # fmt: skip
        """One candidate, on whichever evaluator is free first, against the reference of that
        evaluator's group. Every outcome is a verdict except the run's own errors, which stop the
        run as they would locally. An evaluator that dies or fails while judging it is replaced
        and the candidate judged again elsewhere; after WORKER_DEATHS_TO_CRASH such failures the
        candidate is judged `crash` (unless every failure said the same error of the run's)."""
        _, ref_obj = self.bundle(task)
        failures: list[tuple[Slot, str, KerneldiscError | None]] = []
        waited = busy = 0.0
        while True:
            asked = time.monotonic()
            slot = self._take(frozenset(s.info["node"] for s, _, _ in failures))
            started = time.monotonic()
            waited += started - asked
            if not self._answers(slot):
                self._lost(slot, "found dead while idle")
                busy += time.monotonic() - started
                continue
            try:
                group, reference = self.reference(task, cfg, references, slot, on_new_reference)
            except _EvaluatorLost:
                busy += time.monotonic() - started
                continue  # nothing of the candidate's ran: not its failure
            except BaseException:
                if id(slot) in self._alive:
                    self._idle.put(slot)
                raise
            refusal = None
            try:
                verdict = self.ray.get(slot.handle.evaluate.remote(ref_obj, code, cfg, reference))
            except _LOST_ERRORS as exc:
                why = f"{describe(slot.info)}: its worker died ({type(exc).__name__})"
                self._lost(slot, exc)
            except KerneldiscError as exc:  # that node refused (no GPU there, its task files altered)
                refusal = _unwrapped(exc)
                why = f"{describe(slot.info)}: {first_line(refusal)}"
                self._lost(slot, refusal)
            except Exception as exc:  # the evaluator's machinery failed on that node
                log.warning("evaluator failed on %s", describe(slot.info), exc_info=True)
                why = f"{describe(slot.info)}: evaluator failed ({first_line(exc)})"
                self._lost(slot, exc)
            else:
                busy += time.monotonic() - started
                self._idle.put(slot)
                verdict.judged_by = {**_where(slot), "attempts": len(failures) + 1}
                return Judged(verdict, waited, busy)
            busy += time.monotonic() - started
            failures.append((slot, why, refusal))
            if len(failures) < WORKER_DEATHS_TO_CRASH:
                continue
            said = {str(r) for _, _, r in failures}
            nodes = {s.info["node"] for s, _, _ in failures}
            if (
                all(r is not None for _, _, r in failures)
                and len(said) == 1
                and (len(nodes) > 1 or not self._elsewhere(frozenset(nodes)))
            ):
                raise failures[-1][2]  # the same refusal on every node: the run's error, not a node's
            verdict = Verdict(
                task=task.name, candidate="<code>", device=cfg.device, status="crash",
                message=f"its evaluation failed on {len(failures)} evaluators, each replaced: "
                        + "; ".join(w for _, w, _ in failures),
            )  # fmt: skip
            verdict.judged_by = {**_where(slot), "attempts": len(failures),
                                 "nodes_tried": [s.info["node"] for s, _, _ in failures]}  # fmt: skip
            return Judged(verdict, waited, busy)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slots = list(self._alive.values())
            self._alive.clear()
        while not self._idle.empty():
            self._idle.get_nowait()
        for slot in slots:
            try:
                self.ray.kill(slot.handle)
            except Exception:
                pass
        for thread in list(self._spawners):  # each leaves within one wait slice once closed
            thread.join(timeout=10)


class _ClusterError(KerneldiscError):
    """The cluster cannot evaluate at all (no evaluator left): the run stops at its last step."""


class _EvaluatorLost(Exception):
    pass


class _NodeFailed(Exception):
    """An evaluator's node could not do its part (its disk, its Python): the evaluator is
    replaced, like a lost one."""


def _where(slot: Slot) -> dict[str, Any]:
    return {k: slot.info[k] for k in ("node", "host", "device_name", "group")}


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
        if found is not None and not found.alive() and not found._starting:  # every evaluator gone
            found.close()
            found = None
        if found is None:
            found = _shared[(address, kind)] = RayEvaluators(address, kind, workers, echo)
        return found


def join(address: str, device: str, setting: str, workers: int = 0,
         echo: Callable[[str], None] = print) -> RayEvaluators:  # fmt: skip
    """The evaluators of the cluster at `address` for a run on `device` (this machine's, resolved
    from the user's `setting`): GPU evaluations when this machine runs on a GPU, or when it is
    left to choose (`auto`) and the cluster has GPUs; CPU ones otherwise."""
    init(address)
    kind = "cuda" if device != "cpu" or (setting == "auto" and shape().gpus >= 1) else "cpu"
    return connect(address, kind, workers, echo)


def disconnect() -> None:
    """Stop every evaluator and leave the cluster (tests; the end of a process does it too)."""
    with _shared_lock:
        for evaluators in _shared.values():
            evaluators.close()
        _shared.clear()
    from kerneldisc.ray_cluster import shutdown

    shutdown()
