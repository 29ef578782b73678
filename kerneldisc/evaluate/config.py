"""Evaluation settings (`EvalConfig`) and the device string a user may pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kerneldisc.devices import parse_device, resolve_device
from kerneldisc.errors import ConfigError

MIN_MEMORY_MB = 1024


@dataclass
class EvalConfig:
    """How one candidate is judged. Defaults suit a CPU check; a GPU run raises the budgets.

    `memory_limit_mb` caps the candidate child's address space on the CPU (RLIMIT_AS); on a
    GPU the CUDA driver reserves huge virtual ranges, so there it caps RLIMIT_DATA instead and
    only when set explicitly. `time_budget_s` is per benchmark: repeats stop once the standard
    error is under `target_rel_stderr` of the mean or the budget is spent.
    """

    device: str = "auto"
    timeout_s: float = 180.0
    memory_limit_mb: int | None = None
    time_budget_s: float | None = None
    min_repeats: int | None = None
    max_repeats: int | None = None
    warmup: int | None = None
    target_rel_stderr: float = 0.005
    recheck_speedup_above: float = 5.0
    # Each timed call after the first has its output checked with this probability, drawn by the
    # judge after the call returned, so no call can know in advance that it goes unchecked.
    check_fraction: float | None = None
    output_tail_bytes: int = 4000
    # When the evaluator runs as root, harness processes run as a fresh user that owns nothing
    # (reading any file, writing none of the caller's). False keeps the caller's user, whose files
    # a candidate can then rewrite (caught for the task's and kerneldisc's own, see evaluator.md).
    isolate_user: bool = True
    # On the CPU, every Triton kernel a candidate launches is also compiled for these GPU targets
    # (plus any its task names); one that does not compile is a compile_error. () turns it off.
    gpu_compile_targets: tuple[str, ...] = ("sm_90",)

    def __post_init__(self) -> None:
        parse_device(self.device)
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {self.timeout_s}")
        if self.memory_limit_mb is not None and self.memory_limit_mb < MIN_MEMORY_MB:
            raise ConfigError(
                f"memory limit must be at least {MIN_MEMORY_MB} MB (torch alone maps about 700 MB), "
                f"got {self.memory_limit_mb}"
            )
        from kerneldisc.evaluate.gpu_compile import parse_target

        for target in self.gpu_compile_targets:
            try:
                parse_target(target)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.check_fraction is not None and not 0 < self.check_fraction <= 1:
            raise ConfigError(f"check_fraction must be in (0, 1], got {self.check_fraction}")

    def resolved(self, device: str) -> dict[str, Any]:
        """The settings with device-dependent defaults filled in (what the evaluator really uses)."""
        gpu = device.startswith("cuda")
        values = asdict(self)
        defaults = {
            "memory_limit_mb": None if gpu else 8192,
            "time_budget_s": 2.0 if gpu else 0.4,
            "min_repeats": 10,
            "max_repeats": 1000 if gpu else 200,
            "warmup": 3,
            "check_fraction": 0.05 if gpu else 0.2,
        }
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        values["device"] = device
        return values


def guess_device(requested: str) -> str:
    """The device an evaluation asks its judge for: `cpu` or `cuda:N` (`auto` and `cuda` are the
    first visible GPU). The judge confirms with torch and, for `auto`, falls back to the CPU when
    torch has no CUDA; the verdict always states the device actually used."""
    device = resolve_device(requested)
    return "cuda:0" if device == "cuda" else device
