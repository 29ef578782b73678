"""Joining a Ray cluster for evaluations (`--ray [ADDRESS]`), and what travels to its nodes.

Ray is imported here and in `ray_evaluators.py` only, and only when a user asks for it. Every
check a user can fail (Ray missing, an address nobody answers at, a cluster without the GPUs the
run needs) is a `ConfigError` raised before a run or bench folder is written.

What every node must share: the same kerneldisc source (checked: each evaluator compares a digest
of its package with the driver's and refuses to start otherwise) and Python packages (a venv at
the same version, or one image). Task folders need not be shared: the driver sends each task's
files through Ray's object store and every node writes them into its own cache
(`ray-tasks/<digest>/`), keeping the folder's layout so relative imports and `files:` mappings
still resolve.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerneldisc.cache import cache_root
from kerneldisc.errors import ConfigError, TaskError
from kerneldisc.task import Task
from kerneldisc.task_model import task_files

LOCAL = "local"  # `--ray` without an address: a Ray started on the spot, on this machine
MAX_TASK_BYTES = 32 * 2**20  # a task folder is code and small YAML; more means a wrong folder
CONNECT_TIMEOUT_S = 60


def require_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray, which is not installed: pip install 'kerneldisc[ray]'") from None
    return ray


def init(address: str) -> None:
    """Connect this process to the cluster at `address` (`auto`, `ray://host:10001`, a GCS
    `host:port`, or LOCAL), once; a second call with the same address is a no-op."""
    ray = require_ray()
    if ray.is_initialized():
        return
    # "local" makes ray.init start a Ray of its own, even where RAY_ADDRESS or a Ray started
    # earlier on this machine would otherwise be joined.
    target = "local" if address in ("", LOCAL) else address
    if target not in ("local", "auto"):
        _probe(target)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        ray.init(
            address=target,
            include_dashboard=False,
            log_to_driver=False,  # evaluators' own logs stay on their nodes; verdicts carry what matters
            logging_level="ERROR",
            configure_logging=False,
            # The same venv and kerneldisc on every node is the contract (docs/cluster.md); no
            # working_dir upload, so a big repository never travels.
        )
    except ConnectionError as exc:
        raise ConfigError(
            f"--ray {address}: cannot connect to a Ray cluster there ({first_line(exc)})"
        ) from None
    except Exception as exc:  # Ray raises several types for a bad or silent address
        raise ConfigError(f"--ray {address}: cannot start or join Ray ({first_line(exc)})") from None


def _probe(address: str) -> None:
    """Ray retries a silent address for minutes; a TCP connection tried first says at once that
    nobody listens there."""
    import socket

    hostport = address.removeprefix("ray://").rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(
            f"--ray {address}: not an address (auto, ray://host:10001, host:port, or nothing for a local Ray)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S / 6):
            pass
    except OSError as exc:
        raise ConfigError(
            f"--ray {address}: nothing answers there ({exc.strerror or type(exc).__name__}); "
            "start the cluster first (docs/cluster.md)"
        ) from None


def shutdown() -> None:
    ray = require_ray()
    if ray.is_initialized():
        ray.shutdown()


@dataclass
class ClusterShape:
    """What the cluster offers for evaluation, read once at start."""

    nodes: int  # alive nodes with at least one CPU
    cpus: float
    gpus: float
    gpu_models: list[str] = field(default_factory=list)  # Ray's accelerator_type labels, when set


def shape() -> ClusterShape:
    ray = require_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpu_nodes = [n for n in nodes if n.get("Resources", {}).get("CPU", 0) >= 1]
    resources = ray.cluster_resources()
    models = sorted(
        {
            key.split(":", 1)[1]
            for n in nodes
            for key in n.get("Resources", {})
            if key.startswith("accelerator_type:")
        }
    )
    return ClusterShape(len(cpu_nodes), resources.get("CPU", 0.0), resources.get("GPU", 0.0), models)


def evaluator_count(kind: str, requested: int, found: ClusterShape, address: str) -> int:
    """How many evaluators to start: `requested`, else one per GPU (GPU evaluations) or one per
    node (CPU evaluations: two timing on one small CPU disturb each other). Too few resources is
    the user's error, said before anything is written."""
    if kind == "cuda":
        if found.gpus < 1:
            raise ConfigError(
                f"--ray {address}: the cluster has no GPU for GPU evaluations "
                f"({found.nodes} node(s), {found.cpus:g} CPUs); pass --device cpu or add GPU nodes"
            )
        count = requested or int(found.gpus)
        if count > found.gpus:
            raise ConfigError(
                f"--ray {address}: {count} GPU evaluators asked for, the cluster has {found.gpus:g} GPU(s)"
            )
        return count
    if found.cpus < 1:
        raise ConfigError(f"--ray {address}: the cluster has no CPU to evaluate on")
    count = requested or max(1, found.nodes)
    if count > found.cpus:
        raise ConfigError(
            f"--ray {address}: {count} evaluators asked for, the cluster has {found.cpus:g} CPU(s)"
        )
    return count


def source_digest() -> str:
    """kerneldisc's own Python source, hashed: evaluators on every node must run this code."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# --- tasks on the move ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskBundle:
    """A task and its files, relative to the deepest folder holding them all, for a node that
    does not see the driver's disk. The Task itself travels whole (options of a KernelBench file
    included); only its paths are made anew where the files land."""

    digest: str
    task: Task
    files: tuple[tuple[str, bytes], ...]
    path: str  # task.path, relative to the bundle's root
    submission: str | None
    mapped: tuple[tuple[str, str], ...]


def bundle_task(task: Task) -> TaskBundle:
    paths = _shipped_files(task)
    size = sum(p.stat().st_size for p in paths)  # before reading: a stray data file is refused cheaply
    if size > MAX_TASK_BYTES:
        raise TaskError(
            f"{task.path}: {size / 2**20:.0f} MiB of task files is too much to send to Ray nodes "
            f"(at most {MAX_TASK_BYTES // 2**20} MiB); keep data out of the task folder"
        )
    root = Path(os.path.commonpath([str(p.parent) for p in paths] + [str(_anchor(task))]))
    files = [(str(p.relative_to(root)), p.read_bytes()) for p in paths]
    digest = hashlib.sha256(str(task.path.relative_to(root)).encode())
    for name, data in files:
        digest.update(name.encode() + b"\0" + data + b"\0")
    digest.update(repr(sorted(task.extra.items(), key=str)).encode())
    sub = task.submission_path
    return TaskBundle(
        digest=digest.hexdigest()[:16],
        task=task,
        files=tuple(files),
        path=str(task.path.relative_to(root)),
        submission=str(sub.relative_to(root)) if sub is not None and sub.is_relative_to(root) else None,
        mapped=tuple((name, str(p.relative_to(root))) for name, p in task.mapped_modules.items()),
    )


def unpack_task(bundle: TaskBundle, cache_dir: str | Path | None = None) -> Task:
    """The task on this node, its paths pointing at its files in this node's cache. Files already
    there are compared with the bundle's and written again where they differ: a candidate judged
    here earlier may have rewritten one (the evaluator catches that for the evaluation it was in;
    this keeps it from becoming every later evaluation's reference)."""
    from dataclasses import replace

    from kerneldisc.task_model import task_files_digest

    root = cache_root(cache_dir) / "ray-tasks" / bundle.digest
    for name, data in bundle.files:
        target = root / name
        try:
            if target.read_bytes() == data:
                continue
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    task = replace(
        bundle.task,
        path=root / bundle.path,
        submission_path=root / bundle.submission if bundle.submission else None,
        mapped_modules={name: root / rel for name, rel in bundle.mapped},
    )
    task.files_digest = task_files_digest(task)
    return task


def _anchor(task: Task) -> Path:
    return task.path if task.kind == "folder" else task.path.parent


def _shipped_files(task: Task) -> list[Path]:
    """The task's own files (a folder's whole tree, through links to other folders too, but
    caches and hidden files, so a reference that reads a file beside it still finds it) plus
    modules task.yml maps in."""
    if task.kind != "folder":
        return task_files(task)
    own, seen = [], set()
    for folder, dirs, names in os.walk(task.path, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        own += [Path(folder) / n for n in names if not n.startswith(".") and (Path(folder) / n).is_file()]
    return sorted({*own, *task_files(task)})


def first_line(exc: BaseException) -> str:
    """An error's first line, bounded (Ray's carry remote tracebacks), or its type's name."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def describe(info: dict[str, Any]) -> str:
    """One evaluator, as a person reads it: `node 3f2a… (host), NVIDIA H200`."""
    return f"node {info.get('node', '?')[:8]} ({info.get('host', '?')}), {info.get('device_name', '?')}"
