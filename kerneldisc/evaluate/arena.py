"""Inputs made by the judge and handed to a harness process through shared memory.

The judge generates every input in its own process (with its own generator, seed and torch
defaults) and writes the tensors' bytes into one shared region: a sealed memfd on the CPU (see
`CpuArena`), a CUDA allocation shared by IPC handle on a GPU (`kerneldisc.evaluate.cuda_ipc`).
What crosses to the harness is a *layout*: the structure of the input (tuples, lists, dicts,
scalars) with, for each tensor, its offset in the region, dtype, shape and strides. The harness
rebuilds views over the region (`views`); it never sees a seed or the generator, and the judge
writes each call's values only while every process of the candidate is stopped.
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
from typing import Any

import torch

ALIGN = 64
_F_ADD_SEALS = 1033
_F_SEAL_SEAL, _F_SEAL_SHRINK, _F_SEAL_GROW = 0x1, 0x2, 0x4
_SCALARS = (bool, int, float, str, type(None))


class LayoutError(ValueError):
    """An input the evaluator cannot hand over (an object that is neither a tensor, a container
    nor a plain scalar), or a layout that does not fit its region."""


_DTYPE_NAMES = frozenset(
    "float32 float16 bfloat16 float64 int64 int32 int16 int8 uint8 bool complex64 complex128 "
    "float8_e4m3fn float8_e5m2 uint16 uint32 uint64".split()
)


def overlaps_itself(shape: list[int], stride: list[int]) -> bool:
    """Whether two elements of a view share storage (a broadcast or expanded view): sorted by
    stride, each dimension must step past everything the smaller ones cover."""
    covered = 0
    for size, step in sorted(
        ((n, s) for n, s in zip(shape, stride, strict=True) if n > 1), key=lambda d: d[1]
    ):
        if step <= covered:
            return True
        covered += (size - 1) * step
    return False


def span_elements(t: torch.Tensor) -> int:
    """How many elements of storage a (non-negatively strided) tensor view covers."""
    if t.numel() == 0:
        return 0
    return 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True))


def plan(data: Any) -> tuple[dict[str, Any], list[torch.Tensor], int]:
    """(layout, flat storage spans in order, bytes needed) for a structure of inputs. Each tensor
    keeps its shape, strides and dtype; tensors are not shared between entries."""
    spans: list[torch.Tensor] = []
    metas: list[dict[str, Any]] = []
    offset = 0

    def tree(obj: Any) -> Any:
        nonlocal offset
        if isinstance(obj, torch.Tensor):
            if any(s < 0 for s in obj.stride()):
                raise LayoutError("an input tensor with negative strides")
            t = obj.detach()
            n = span_elements(t)
            flat = t.as_strided((n,), (1,)) if n else t.reshape(0)
            nbytes = n * t.element_size()
            metas.append({"offset": offset, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                          "stride": list(t.stride()), "nbytes": nbytes})  # fmt: skip
            spans.append(flat)
            offset += -(-nbytes // ALIGN) * ALIGN
            return {"t": len(metas) - 1}
        if isinstance(obj, tuple):
            return {"tuple": [tree(v) for v in obj]}
        if isinstance(obj, list):
            return {"list": [tree(v) for v in obj]}
        if isinstance(obj, dict):
            if not all(isinstance(k, (str, int)) for k in obj):
                raise LayoutError("an input dict whose keys are not strings or integers")
            return {"dict": [[k, tree(v)] for k, v in obj.items()]}
        if isinstance(obj, torch.dtype):
            return {"dtype": str(obj).removeprefix("torch.")}
        if isinstance(obj, float) and not math.isfinite(obj):
            return {"float": repr(obj)}
        if isinstance(obj, _SCALARS):
            return {"s": obj}
        raise LayoutError(f"an input of type {type(obj).__name__} (inputs may hold tensors, tuples, lists, "
                          "dicts, dtypes and plain scalars)")  # fmt: skip

    layout = {"tree": tree(data), "tensors": metas}
    return layout, spans, offset


class CpuArena:
    """A memfd the judge writes inputs into, as large as the machine's memory but sparse (only the
    pages written use memory). Sealed at once against shrinking, growing and new seals: a
    candidate can neither make the judge's own accesses fault nor change its size. Harness
    processes get `reader_fd`, opened read-only, and the file is the judge's user's alone (mode
    0400): a candidate of another user can neither write its inputs nor commit the region's
    pages (fallocate, write) as memory nobody charges it for."""

    def __init__(self, name: str = "kerneldisc-inputs", size: int | None = None) -> None:
        self.fd = os.memfd_create(name, os.MFD_ALLOW_SEALING)
        self.size = size or _memory_size()
        os.ftruncate(self.fd, self.size)
        fcntl.fcntl(self.fd, _F_ADD_SEALS, _F_SEAL_SHRINK | _F_SEAL_GROW | _F_SEAL_SEAL)
        self.reader_fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC)
        os.fchmod(self.fd, 0o400)  # after the read-only open: nobody opens it for writing again
        self.mapped = 0
        self.map: mmap.mmap | None = None

    def layout(self, data: Any) -> tuple[dict[str, Any], list[torch.Tensor]]:
        """Where `data`'s tensors go; the layout carries the prefix of the region the harness maps."""
        layout, spans, needed = plan(data)
        if needed > self.size:
            raise LayoutError(f"the inputs need {needed} bytes, more than this machine's memory")
        self._map(needed)
        layout["size"] = self.mapped
        return layout, spans

    def fill(self, layout: dict[str, Any], spans: list[torch.Tensor]) -> None:
        base = self.bytes()
        for meta, flat in zip(layout["tensors"], spans, strict=True):
            if meta["nbytes"]:
                base[meta["offset"] : meta["offset"] + meta["nbytes"]].copy_(
                    flat.contiguous().view(torch.uint8)
                )

    def write(self, data: Any) -> dict[str, Any]:
        """Copy `data`'s tensors into the region; the layout the harness needs to view them."""
        layout, spans = self.layout(data)
        self.fill(layout, spans)
        return layout

    def bytes(self) -> torch.Tensor:
        """The mapped prefix of the region as a uint8 tensor (the judge's own view)."""
        return torch.frombuffer(self.map, dtype=torch.uint8)

    def read(self, meta: dict[str, Any]) -> torch.Tensor:
        """A copy of one input tensor as it is now in the region (for the mutation check)."""
        return view(self.bytes(), meta).clone()

    def _map(self, needed: int) -> None:
        if self.map is not None and needed <= self.mapped:
            return
        size = max(needed, 2 * self.mapped, 1 << 16)
        size = min(-(-size // mmap.PAGESIZE) * mmap.PAGESIZE, self.size)
        if self.map is not None:
            self.map.close()
        self.map = mmap.mmap(self.fd, size)
        self.mapped = size

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        os.close(self.fd)
        os.close(self.reader_fd)


def _memory_size() -> int:
    try:
        return max(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), 1 << 30)
    except (ValueError, OSError):
        return 64 << 30


def view(base: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """One tensor of a layout, viewed over the region `base` (uint8)."""
    dtype = getattr(torch, meta["dtype"])
    nbytes, offset = int(meta["nbytes"]), int(meta["offset"])
    if not nbytes:
        return torch.empty(meta["shape"], dtype=dtype, device=base.device)
    if offset < 0 or offset + nbytes > base.numel():
        raise LayoutError("layout entry outside its region")
    flat = base[offset : offset + nbytes].view(dtype)
    return flat.as_strided(meta["shape"], meta["stride"])


def views(base: torch.Tensor, layout: dict[str, Any]) -> Any:
    """The input structure of a layout, its tensors viewing the region `base`."""
    return Viewer(base, layout)()


class Viewer:
    """Fresh views of a layout's inputs for each call, cheaply: the per-dtype views of the region
    and each tensor's geometry are worked out once per layout (this runs inside the charged part
    of every call, for candidate and reference alike)."""

    def __init__(self, base: torch.Tensor, layout: dict[str, Any]) -> None:
        self.tree = layout["tree"]
        typed: dict[str, torch.Tensor] = {}
        self.parts = []
        for meta in layout["tensors"]:
            dtype = getattr(torch, meta["dtype"])
            size = torch.empty(0, dtype=dtype).element_size()
            offset, nbytes = int(meta["offset"]), int(meta["nbytes"])
            if offset < 0 or offset + nbytes > base.numel() or offset % size:
                raise LayoutError("layout entry outside its region")
            if meta["dtype"] not in typed:
                usable = base.numel() // size * size
                typed[meta["dtype"]] = base[:usable].view(dtype)
            shape, stride = tuple(meta["shape"]), tuple(meta["stride"])
            self.parts.append((typed[meta["dtype"]], shape, stride, offset // size, nbytes, dtype))

        # Leaves the reference itself writes (an output buffer the task hands over, a cache it
        # updates in place): the region is read-only, so these are private copies, made per call
        # once the call's values are in (see Session.call).
        self.writable = [
            i for i in layout.get("writable") or [] if isinstance(i, int) and 0 <= i < len(self.parts)
        ]

    def views(self) -> list[torch.Tensor]:
        return [
            whole.as_strided(shape, stride, first)
            if nbytes
            else torch.empty(shape, dtype=dtype, device=whole.device)
            for whole, shape, stride, first, nbytes, dtype in self.parts
        ]

    def __call__(self) -> Any:
        return rebuild(self.tree, self.views())

    def with_copies(self, views: list[torch.Tensor]) -> Any:
        """The inputs with each writable leaf a private, writable copy of its current values."""
        tensors = list(views)
        for i in self.writable:
            tensors[i] = tensors[i].clone()
        return rebuild(self.tree, tensors)


def rebuild(node: Any, tensors: list[torch.Tensor]) -> Any:
    ((kind, value),) = node.items()
    if kind == "t":
        return tensors[value]
    if kind == "tuple":
        return tuple(rebuild(v, tensors) for v in value)
    if kind == "list":
        return [rebuild(v, tensors) for v in value]
    if kind == "dict":
        return {k: rebuild(v, tensors) for k, v in value}
    if kind == "dtype":  # a name off a fixed list: never an arbitrary attribute of torch
        dtype = getattr(torch, value, None) if isinstance(value, str) and value in _DTYPE_NAMES else None
        if not isinstance(dtype, torch.dtype):
            raise LayoutError(f"unknown dtype {value!r}")
        return dtype
    if kind == "float":
        return float(value)
    if kind == "complex":
        return complex(float(value[0]), float(value[1]))
    return value
