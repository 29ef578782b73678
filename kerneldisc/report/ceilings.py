"""Device roofline ceilings: copy bandwidth and matmul rate, measured once per device and cached.

A kernel can go no faster than max(flops / peak matmul rate, bytes / copy bandwidth); reports
divide that limit by the measured runtime to say how close a kernel is to the speed of light.
The ceilings are measured, not taken from data sheets, so they hold for the clocks and memory
of the machine that produced the timings. The cache is a JSON file keyed by device name under
`$KERNELDISC_CACHE` (default `~/.cache/kerneldisc`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from kerneldisc.atomic import write_json
from kerneldisc.cache import cache_root
from kerneldisc.devices import cpu_name
from kerneldisc.errors import ConfigError

CACHE_FILE = "ceilings.json"


@dataclass(frozen=True)
class Ceilings:
    device_name: str
    copy_bytes_per_s: float  # bytes read plus bytes written per second by a large tensor copy
    matmul_flops_per_s: float
    matmul_dtype: str
    measured_at: str

    def limit_us(self, flops: float | None, nbytes: float | None) -> float | None:
        """Roofline lower bound on a kernel's runtime in µs, from whichever counts are known."""
        bounds = []
        if flops:
            bounds.append(flops / self.matmul_flops_per_s)
        if nbytes:
            bounds.append(nbytes / self.copy_bytes_per_s)
        return max(bounds) * 1e6 if bounds else None


def cache_path() -> Path:
    return cache_root() / CACHE_FILE


def local_device_name(device: str) -> str:
    """The name reports and caches use for `device` ("cpu" or "cuda[:i]") on this machine."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_name()


def load_cached(device_name: str) -> Ceilings | None:
    entry = _read_cache().get(device_name)
    return Ceilings(**entry) if entry else None


def get_ceilings(device: str) -> Ceilings:
    """Ceilings of this machine's `device`, measured on first use and cached by device name."""
    name = local_device_name(device)
    cached = load_cached(name)
    if cached is not None:
        return cached
    ceilings = measure(device, name)
    store(ceilings)
    return ceilings


def store(ceilings: Ceilings) -> None:
    path = cache_path()
    data = _read_cache()
    data[ceilings.device_name] = asdict(ceilings)
    write_json(path, data)  # atomic: concurrent reports never read half a file


def measure(device: str, name: str) -> Ceilings:
    """Best-of-several timings; sizes kept small on the CPU so this takes a second or two."""
    import torch

    on_gpu = device.startswith("cuda")
    dtype = torch.bfloat16 if on_gpu else torch.float32
    copy_bytes_per_s, matmul_flops_per_s = _rates(torch.device(device), dtype)
    if on_gpu:
        torch.cuda.empty_cache()  # hand the GiB back before any kernel is timed on this GPU
    return Ceilings(
        device_name=name,
        copy_bytes_per_s=copy_bytes_per_s,
        matmul_flops_per_s=matmul_flops_per_s,
        matmul_dtype=str(dtype).removeprefix("torch."),
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _rates(dev, dtype) -> tuple[float, float]:
    """(bytes read + written per second by a large copy, matmul FLOP per second)."""
    import torch

    on_gpu = dev.type == "cuda"
    copy_elems = (256 << 20) if on_gpu else (8 << 20)  # 512 MiB bf16 on GPU, 32 MiB fp32 on CPU
    n = 8192 if on_gpu else 512
    src = torch.ones(copy_elems, dtype=dtype, device=dev)
    dst = torch.empty_like(src)
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    copy_s = _best_seconds(lambda: dst.copy_(src), dev)
    matmul_s = _best_seconds(lambda: torch.mm(a, b), dev)
    return 2 * src.numel() * src.element_size() / copy_s, 2 * n**3 / matmul_s


def _best_seconds(fn, dev, repeats: int = 5) -> float:
    import torch

    fn()  # warm-up: allocations, kernel selection, page faults
    best = float("inf")
    for _ in range(repeats):
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(dev)
            best = min(best, start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
    return best


def _read_cache() -> dict:
    path = cache_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable ceilings cache ({exc}); delete it to measure again") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of device name to ceilings; delete it to measure again"
        )
    return {k: v for k, v in data.items() if isinstance(v, dict)}
