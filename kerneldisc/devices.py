"""Which device a command runs on: one validator of what users write, one resolver of `auto`,
one count of the GPUs this process may use. Nothing here initialises CUDA (the evaluator forks
after asking), so it reads NVML and CUDA_VISIBLE_DEVICES, never torch.cuda.

    parse_device("cuda:1") -> "cuda:1"      # or ConfigError naming what is accepted
    resolve_device("auto") -> "cuda" | "cpu"   # "cuda": the visible GPUs; "cuda:N": that one
    visible_gpus() -> ["0", "1", ...]       # ids as CUDA_VISIBLE_DEVICES would name them
    cpu_name() -> "AMD EPYC 9654 96-Core Processor"
"""

from __future__ import annotations

import os
import platform
import re

from kerneldisc.errors import ConfigError

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def parse_device(text: str, flag: str = "device") -> str:
    """A device string as users write it: auto, cpu, cuda or cuda:N (any case)."""
    value = str(text).strip().lower()
    if not _DEVICE_RE.match(value):
        raise ConfigError(f"{flag} must be auto, cpu, cuda or cuda:N, got {text!r}")
    return value


def resolve_device(requested: str, flag: str = "device") -> str:
    """`cpu`, `cuda` (every visible GPU; a discovery gives them roles, an evaluation takes the
    first) or `cuda:N`. `auto` is `cuda` where a GPU is visible, else `cpu`. A GPU asked for where
    none is visible is the caller's error."""
    requested = parse_device(requested, flag)
    count = len(visible_gpus())
    if requested == "auto":
        return "cuda" if count else "cpu"
    if requested == "cpu":
        return "cpu"
    if count == 0:
        raise ConfigError(f"--{flag} {requested} asked for, but no CUDA GPU is visible")
    index = int(requested.partition(":")[2] or 0)
    if index >= count:
        raise ConfigError(
            f"--{flag} {requested} asked for, but only {count} GPU(s) are visible (0..{count - 1})"
        )
    return requested


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (NVML's count when it
    is unset), read without initialising CUDA."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [g.strip() for g in env.split(",")]
        if "-1" in ids:  # CUDA stops at the first invalid id
            ids = ids[: ids.index("-1")]
        return [g for g in ids if g]
    return [str(i) for i in range(_nvml_count())]


def _nvml_count() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML: a device file still says a driver is there
        return 1 if os.path.exists("/dev/nvidia0") else 0


def cpu_name() -> str:
    """This machine's CPU model as /proc/cpuinfo names it (reports and caches key on it)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"
