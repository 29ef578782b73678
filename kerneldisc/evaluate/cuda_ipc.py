"""The GPU side of the evaluator's hand-over: inputs and outputs cross between the judge's and
the harness's CUDA contexts as IPC memory handles (CUDA driver API through ctypes), so that the
judge writes inputs and reads outputs itself, while the harness process is stopped.

- Inputs: the judge owns one device buffer (`CudaArena`), writes each call's values into it and
  flushes the L2 cache (zeroing a buffer twice its size) before the call; the harness opens the
  buffer's handle once and views the inputs over it (`open_arena`).
- A call: the harness records a CUDA event, calls the kernel, synchronises the whole device
  (every stream), records a second event (`timed_call`) and reports the elapsed time with, for
  each output tensor, the IPC handle of its allocation and its offset (`share`).
- Outputs: the judge opens the handle and copies the bytes itself (`read_output`); a checked
  output is read twice, a settle interval apart, so GPU work still writing after the reply
  shows (see judge.py).

What still relies on code in the candidate's process is the device synchronisation and the
events; the judge bounds it (see docs/evaluator.md, "The GPU").
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch

from kerneldisc.evaluate.arena import plan, span_elements

_CU_IPC_LAZY_ENABLE_PEER_ACCESS = 1
_cuda: ctypes.CDLL | None = None


class CudaIpcError(RuntimeError):
    pass


class _IpcHandle(ctypes.Structure):
    _fields_ = [("reserved", ctypes.c_char * 64)]


def _driver() -> ctypes.CDLL:
    global _cuda
    if _cuda is None:
        _cuda = ctypes.CDLL("libcuda.so.1")
    return _cuda


def _fn(*names: str):
    lib = _driver()
    for name in names:
        if hasattr(lib, name):
            return getattr(lib, name)
    raise CudaIpcError(f"the CUDA driver has none of {', '.join(names)}")


def _check(result: int, what: str) -> None:
    if result != 0:
        raise CudaIpcError(f"{what} failed with CUresult {result}")


def allocation_of(ptr: int) -> tuple[int, int]:
    """(base, size) of the device allocation that holds `ptr`."""
    base, size = ctypes.c_uint64(), ctypes.c_size_t()
    fn = _fn("cuMemGetAddressRange_v2", "cuMemGetAddressRange")
    _check(fn(ctypes.byref(base), ctypes.byref(size), ctypes.c_uint64(ptr)), "cuMemGetAddressRange")
    return base.value, size.value


def handle_of(base: int) -> bytes:
    handle = _IpcHandle()
    _check(_fn("cuIpcGetMemHandle")(ctypes.byref(handle), ctypes.c_uint64(base)), "cuIpcGetMemHandle")
    return bytes(handle.reserved)


def open_handle(raw: bytes) -> int:
    if len(raw) != 64:
        raise CudaIpcError("an IPC memory handle is 64 bytes")
    handle = _IpcHandle()
    handle.reserved = raw
    ptr = ctypes.c_uint64()
    fn = _fn("cuIpcOpenMemHandle_v2", "cuIpcOpenMemHandle")
    fn.argtypes = [ctypes.POINTER(ctypes.c_uint64), _IpcHandle, ctypes.c_uint]
    _check(fn(ctypes.byref(ptr), handle, _CU_IPC_LAZY_ENABLE_PEER_ACCESS), "cuIpcOpenMemHandle")
    return ptr.value


def close_handle(ptr: int) -> None:
    _fn("cuIpcCloseMemHandle")(ctypes.c_uint64(ptr))


class _DeviceMemory:
    """A raw device range as torch sees foreign memory: through __cuda_array_interface__."""

    def __init__(self, ptr: int, nbytes: int) -> None:
        self.__cuda_array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (ptr, False),
                                         "version": 2, "strides": None}  # fmt: skip


def device_bytes(ptr: int, nbytes: int, device: str) -> torch.Tensor:
    return torch.as_tensor(_DeviceMemory(ptr, nbytes), device=device)


# --- the judge's side ---------------------------------------------------------------------


class CudaArena:
    """The judge's device buffer of inputs, shared with the harness by its IPC handle."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.buffer: torch.Tensor | None = None
        self.size = 0
        props = torch.cuda.get_device_properties(torch.device(device))
        l2 = int(getattr(props, "L2_cache_size", 0) or 0)
        # Twice the L2 (at least 256 MiB) so every line a previous call touched is evicted.
        self._flush = torch.empty(max(2 * l2, 256 << 20), dtype=torch.int8, device=device)

    def layout(self, data: Any) -> tuple[dict[str, Any], list[torch.Tensor]]:
        layout, spans, needed = plan(data)
        if needed > self.size:
            self.size = max(needed, 2 * self.size, 1 << 20)
            self.buffer = torch.empty(self.size, dtype=torch.uint8, device=self.device)
        base, _ = allocation_of(self.buffer.data_ptr())
        layout["size"] = self.size
        layout["arena"] = {"handle": handle_of(base).hex(), "offset": self.buffer.data_ptr() - base,
                           "size": self.size}  # fmt: skip
        return layout, spans

    def fill(self, layout: dict[str, Any], spans: list[torch.Tensor]) -> None:
        """This call's values, then the L2 flush; the judge's own work on the device is finished
        before the harness is let go."""
        for meta, flat in zip(layout["tensors"], spans, strict=True):
            if meta["nbytes"]:
                self.buffer[meta["offset"] : meta["offset"] + meta["nbytes"]].copy_(
                    flat.contiguous().view(torch.uint8)
                )
        self._flush.zero_()
        torch.cuda.synchronize(self.device)

    def read(self, meta: dict[str, Any]) -> torch.Tensor:
        from kerneldisc.evaluate.arena import view

        return view(self.buffer, meta).clone()


class OutputReader:
    """Opens the harness's output allocations (cached by handle) and copies tensors out."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._opened: dict[bytes, int] = {}

    def tensor(self, meta: dict[str, Any], dtype: torch.dtype) -> torch.Tensor:
        raw = bytes.fromhex(str(meta["ipc_handle"]))
        ptr = self._opened.get(raw)
        if ptr is None:
            if len(self._opened) > 64:
                self.close()
            ptr = self._opened[raw] = open_handle(raw)
        shape, stride = [int(n) for n in meta["shape"]], [int(s) for s in meta["stride"]]
        probe = torch.empty_strided(shape, stride, dtype=dtype, device="meta")
        nbytes = span_elements(probe) * probe.element_size()
        offset, size = int(meta["ipc_offset"]), int(meta["ipc_size"])
        if offset < 0 or offset + nbytes > size:
            raise CudaIpcError("the output lies outside the allocation its handle names")
        if not nbytes:
            return torch.empty(shape, dtype=dtype, device=self.device)
        region = device_bytes(ptr + offset, nbytes, self.device)
        return region.view(dtype).as_strided(shape, stride).clone()

    def close(self) -> None:
        for ptr in self._opened.values():
            close_handle(ptr)
        self._opened.clear()


# --- the harness's side ---------------------------------------------------------------------

_arenas: dict[str, torch.Tensor] = {}


def open_arena(desc: dict[str, Any]) -> torch.Tensor:
    key = desc["handle"]
    if key not in _arenas:
        ptr = open_handle(bytes.fromhex(key))
        _arenas.clear()
        _arenas[key] = device_bytes(ptr + int(desc["offset"]), int(desc["size"]), torch.cuda.current_device())
    return _arenas[key]


def timed_call(kernel, data: Any) -> tuple[Any, float]:
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    out = kernel(data)
    torch.cuda.synchronize()  # every stream of the device: work left on side streams is inside
    stop.record()
    stop.synchronize()
    return out, start.elapsed_time(stop) * 1e3


def share(t: torch.Tensor) -> dict[str, Any]:
    base, size = allocation_of(t.data_ptr())
    return {"ipc_handle": handle_of(base).hex(), "ipc_offset": t.data_ptr() - base, "ipc_size": size}
