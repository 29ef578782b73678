"""Device facts for the verdict: NVML telemetry on a GPU, a plain CPU description otherwise.

NVML (nvidia-ml-py) is optional at run time: without the library or a driver the facts
simply say `cpu` (or omit the telemetry) — never an error.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from kerneldisc.devices import cpu_name


def cpu_facts() -> dict[str, Any]:
    return {"device": "cpu", "name": cpu_name(), "cores": os.cpu_count(), "machine": platform.machine()}


def gpu_facts(device: str) -> dict[str, Any]:
    """Name and memory from torch; driver, clocks, temperature and power from NVML when present."""
    import torch

    index = torch.device(device).index or 0
    props = torch.cuda.get_device_properties(index)
    facts: dict[str, Any] = {
        "device": device,
        "name": props.name,
        "memory_gb": round(props.total_memory / 2**30, 1),
        "capability": f"{props.major}.{props.minor}",
        "torch": torch.__version__,
    }
    facts.update(_nvml_telemetry(str(getattr(props, "uuid", "") or ""), index))
    return facts


def _nvml_telemetry(uuid: str, index: int) -> dict[str, Any]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return {"nvml": "unavailable"}
    try:
        handle = None
        if uuid:  # torch's index follows CUDA_VISIBLE_DEVICES, NVML's does not: match by UUID
            try:
                name = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
                handle = pynvml.nvmlDeviceGetHandleByUUID(name)
            except Exception:
                handle = None
        if handle is None:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        facts: dict[str, Any] = {}
        probes = {
            "driver": lambda: pynvml.nvmlSystemGetDriverVersion(),
            "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "memory_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "max_sm_clock_mhz": lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "temperature_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
            "power_limit_w": lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
        }
        for key, probe in probes.items():
            try:
                value = probe()
                facts[key] = value.decode() if isinstance(value, bytes) else value
            except Exception:
                continue  # a field this GPU or driver does not report
        return facts
    finally:
        pynvml.nvmlShutdown()
