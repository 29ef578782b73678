"""The verdict on one candidate, and the timing of a task's reference."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("ok", "compile_error", "incorrect", "timeout", "crash", "rejected")


def timing_method(device: str) -> str:
    """How call times are measured on a device, recorded with every reference timing so that
    times measured one way are never compared with times measured another (see evaluator.md)."""
    return "cuda-events-2" if device.startswith("cuda") else "cpu-time-3"


@dataclass
class RuntimeStats:
    """Statistics of the timed calls of one benchmark, in microseconds."""

    mean_us: float
    std_us: float
    stderr_us: float
    min_us: float
    median_us: float
    max_us: float
    repeats: int

    @classmethod
    def from_times(cls, times_us: list[float]) -> RuntimeStats:
        n = len(times_us)
        mean = sum(times_us) / n
        var = sum((t - mean) ** 2 for t in times_us) / (n - 1) if n > 1 else 0.0
        ordered = sorted(times_us)
        mid = n // 2
        median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return cls(mean, var**0.5, (var / n) ** 0.5, ordered[0], median, ordered[-1], n)


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class, despite the name

    spec: dict[str, Any]
    passed: bool
    message: str = ""


@dataclass
class BenchmarkResult:
    spec: dict[str, Any]
    runtime: RuntimeStats | None = None
    reference: RuntimeStats | None = None
    # On a GPU, the reference's judge-side wall time minus its CUDA-event time per call (a high
    # quantile): candidate calls are never charged less than their wall time minus this. On the
    # CPU, what a call with no kernel costs the reference's harness (a low quantile): no call is
    # charged less.
    handshake_us: float | None = None


def aggregate(means_us: list[float], ranking: str) -> float:
    """The task's ranked aggregate of per-benchmark means: geometric or arithmetic mean."""
    if ranking == "mean":
        return sum(means_us) / len(means_us)
    product = 1.0
    for m in means_us:
        product *= m
    return product ** (1.0 / len(means_us))


Z_95 = 1.96  # a two-sided 95 % interval, from the normal approximation


def speedup_interval(cand: list[RuntimeStats], ref: list[RuntimeStats], ranking: str) -> tuple[float, float]:
    """A 95 % interval of the speedup (reference / candidate, aggregated as the task ranks),
    from each benchmark's standard error, propagated on the log scale (a ratio is log-normal
    enough for this); a benchmark timed once counts as exact."""
    speedup = aggregate([r.mean_us for r in ref], ranking) / aggregate([c.mean_us for c in cand], ranking)
    if ranking == "mean":
        var = (
            sum(r.stderr_us**2 for r in ref) / sum(r.mean_us for r in ref) ** 2
            + sum(c.stderr_us**2 for c in cand) / sum(c.mean_us for c in cand) ** 2
        )
    else:
        n = len(cand)
        var = (
            sum(
                (r.stderr_us / r.mean_us) ** 2 + (c.stderr_us / c.mean_us) ** 2
                for r, c in zip(ref, cand, strict=True)
            )
            / n**2
        )
    spread = math.exp(Z_95 * math.sqrt(var))
    return speedup / spread, speedup * spread


@dataclass
class ReferenceTiming:
    """A task's reference timed once with the candidate protocol, reusable across verdicts."""

    task: str
    device: str
    runtime_us: float
    benchmarks: list[BenchmarkResult]
    device_facts: dict[str, Any] = field(default_factory=dict)
    # How call times were measured ("cpu-time-3": a cgroup's count and the null-call floor,
    # "cuda-events-2"; older names, or "" before these existed, are timed again):
    # times measured one way are never compared with times measured another.
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceTiming:
        benches = [
            BenchmarkResult(
                b["spec"], _stats(b.get("runtime")), _stats(b.get("reference")), b.get("handshake_us")
            )
            for b in d["benchmarks"]
        ]
        return cls(
            d["task"],
            d["device"],
            d["runtime_us"],
            benches,
            d.get("device_facts") or {},
            str(d.get("method") or ""),
        )


@dataclass
class Verdict:
    """What the evaluator concluded. `correct` holds only for status ok; `speedup` only then too."""

    task: str
    candidate: str
    device: str
    status: str
    message: str
    tests: list[TestResult] = field(default_factory=list)
    benchmarks: list[BenchmarkResult] = field(default_factory=list)
    runtime_us: float | None = None
    reference_runtime_us: float | None = None
    speedup: float | None = None
    device_facts: dict[str, Any] = field(default_factory=dict)
    rechecked: bool = False
    # A CPU verdict on a Triton kernel ran it through Triton's interpreter, one program after
    # another: races cannot show, and its speed says nothing about a GPU.
    interpreted: bool = False
    # Each Triton kernel the candidate launched, compiled for a real GPU target (on the CPU) or as
    # Triton compiled it (on a GPU): kernel, target, ok, registers, spills, shared memory, error
    # (gpu_compile.py). CUDA C++ candidates get the same entries from nvcc.
    gpu_compile: list[dict[str, Any]] = field(default_factory=list)
    # The speedup's 95 % interval [low, high] (speedup_interval); one that holds 1.0 means the
    # candidate and the reference cannot be told apart at this measurement's precision.
    speedup_ci: list[float] | None = None
    # Where a Ray cluster judged it (node, host, device_name, group, attempts); empty when local.
    judged_by: dict[str, Any] = field(default_factory=dict)
    stdout_tail: str = ""
    stderr_tail: str = ""
    elapsed_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}")

    @property
    def correct(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["correct"] = self.correct
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["tests"] = [TestResult(**t) for t in d.get("tests", [])]
        known["benchmarks"] = [
            BenchmarkResult(
                b["spec"], _stats(b.get("runtime")), _stats(b.get("reference")), b.get("handshake_us")
            )
            for b in d.get("benchmarks", [])
        ]
        return cls(**known)

    def summary(self) -> str:
        """A few lines for a person: status, message, tests, runtime against the reference."""
        where = self.device + (", Triton interpreter" if self.interpreted else "")
        lines = [f"{self.status.upper()}  {self.task} <- {self.candidate}  [device: {where}]"]
        if self.message:
            lines.append(f"  {self.message}")
        for t in self.tests:
            label = ", ".join(f"{k}={v}" for k, v in t.spec.items())
            mark = "pass" if t.passed else "FAIL"
            lines.append(
                f"  test {label}: {mark}" + (f" ({t.message})" if t.message and not t.passed else "")
            )
        if self.runtime_us is not None:
            line = f"  runtime {self.runtime_us:.1f} us"
            if self.reference_runtime_us is not None:
                line += f", reference {self.reference_runtime_us:.1f} us"
            if self.speedup is not None:
                line += f", speedup {self.speedup:.3f}x" + (" (re-measured)" if self.rechecked else "")
                if self.speedup_ci:
                    line += f", 95% interval {self.speedup_ci[0]:.3g}-{self.speedup_ci[1]:.3g}x"
            lines.append(line)
        for k in self.gpu_compile:
            if k.get("ok"):
                lines.append(
                    f"  {k.get('target')} {k.get('kernel')}: {k.get('registers')} registers, "
                    f"{k.get('spill_stores') or 0} bytes spilled, {k.get('shared_bytes') or 0} bytes shared"
                )
            elif k.get("error"):
                lines.append(f"  {k.get('target')} {k.get('kernel')}: {k['error'].splitlines()[0][:200]}")
        return "\n".join(lines)


def _stats(d: dict[str, Any] | None) -> RuntimeStats | None:
    return RuntimeStats(**d) if d else None
