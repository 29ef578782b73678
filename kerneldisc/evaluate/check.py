"""Correctness: what the candidate's output must look like, and how it is compared.

`output_format_problem`, `aliased_inputs` and `changed_inputs` run in the candidate's child
(they need the live objects); `compare` runs in the trusted judge against the reference.
"""

from __future__ import annotations

from typing import Any

import torch

_SCALARS = (bool, int, float, complex, str, type(None))
# Inputs smaller than this are copied before every timed call, so that any call drawn for a check
# has its inputs compared too; larger ones only before the first timed call (always checked),
# so the copies never double a large task's memory on every call.
SNAPSHOT_ALL_BELOW_BYTES = 256 << 20


def tensors(obj: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a nested structure with a readable path ("[0]", "['k']")."""
    if isinstance(obj, torch.Tensor):
        return [(path or "output", obj)]
    if isinstance(obj, (tuple, list)):
        return [x for i, v in enumerate(obj) for x in tensors(v, f"{path}[{i}]")]
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in tensors(v, f"{path}[{k!r}]")]
    return []


def output_format_problem(out: Any, device: str) -> tuple[str, str] | None:
    """(status, message) when the output is not plain, materialised tensors on the right device."""
    if isinstance(out, torch.Tensor):
        if type(out) is not torch.Tensor:
            return (
                "rejected",
                f"output is a {type(out).__name__}, a Tensor subclass; return a plain torch.Tensor",
            )
        if out.is_meta or out.layout != torch.strided:
            return (
                "rejected",
                f"output is not a materialised dense tensor (layout {out.layout}, meta={out.is_meta})",
            )
        if torch.device(device).type != out.device.type:
            return "incorrect", f"output is on {out.device}, expected {device}"
        return None
    if isinstance(out, (tuple, list)):
        for item in out:
            problem = output_format_problem(item, device)
            if problem:
                return problem
        return None
    if isinstance(out, dict):
        for item in out.values():
            problem = output_format_problem(item, device)
            if problem:
                return problem
        return None
    if isinstance(out, _SCALARS):
        return None
    return (
        "rejected",
        f"output of type {type(out).__name__} is not a torch.Tensor (lazy or custom objects are not accepted)",
    )


def aliased_inputs(out: Any, data: Any) -> list[str]:
    """Output tensors whose memory overlaps an input's (the input itself, a view, or a slice)."""
    inputs = [(p, _span(t)) for p, t in tensors(data, "input")]
    found = []
    for path, t in tensors(out):
        lo, hi = _span(t)
        if hi > lo and any(lo < ihi and ilo < hi for _, (ilo, ihi) in inputs):
            found.append(path)
    return found


def _span(t: torch.Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def small(data: Any) -> bool:
    """Inputs small enough to be copied before every timed call (see SNAPSHOT_ALL_BELOW_BYTES)."""
    return sum(t.nbytes for _, t in tensors(data)) < SNAPSHOT_ALL_BELOW_BYTES


def snapshot(obj: Any) -> Any:
    """A deep copy of every tensor in a structure (for before/after comparisons)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, (tuple, list)):
        copied = [snapshot(v) for v in obj]
        return tuple(copied) if isinstance(obj, tuple) else copied
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    return obj


def changed_inputs(before: Any, after: Any) -> list[str]:
    """Paths of tensors whose bytes differ between two structures (NaN-safe: bytes, not values)."""
    a, b = tensors(before, "input"), tensors(after, "input")
    return [pa for (pa, ta), (_, tb) in zip(a, b, strict=False) if not same_bytes(ta, tb)]


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.numel() == 0:
        return True
    return torch.equal(_bytes(a), _bytes(b))


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def structure_problem(out: Any, ref: Any, path: str = "output") -> str | None:
    """The first difference in structure, shape or dtype between `out` (tensors may be on the
    meta device: nothing is read) and `ref`, or None."""
    if isinstance(ref, torch.Tensor):
        if not isinstance(out, torch.Tensor):
            return f"{path}: expected a tensor, got {type(out).__name__}"
        if tuple(out.shape) != tuple(ref.shape):
            return f"{path}: shape mismatch: got {tuple(out.shape)}, expected {tuple(ref.shape)}"
        if out.dtype != ref.dtype:
            return f"{path}: dtype mismatch: got {out.dtype}, expected {ref.dtype}"
        return None
    if isinstance(ref, (tuple, list)):
        if not isinstance(out, (tuple, list)):
            return f"{path}: expected a {type(ref).__name__} of {len(ref)}, got {type(out).__name__}"
        if len(out) != len(ref):
            return f"{path}: expected {len(ref)} items, got {len(out)}"
        for i, (o, r) in enumerate(zip(out, ref, strict=True)):
            problem = structure_problem(o, r, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(ref, dict):
        if not isinstance(out, dict) or set(out) != set(ref):
            return f"{path}: expected a dict with keys {sorted(ref)}"
        for k in ref:
            problem = structure_problem(out[k], ref[k], f"{path}[{k!r}]")
            if problem:
                return problem
        return None
    if isinstance(out, torch.Tensor):
        return f"{path}: expected {type(ref).__name__}, got a tensor"
    return None


def compare(
    out: Any,
    ref: Any,
    rtol: float,
    atol: float,
    path: str = "output",
    by_dtype: dict[str, float] | None = None,
) -> str | None:
    """None when `out` matches `ref` within tolerance, else the first reason it does not.
    `by_dtype` gives atol = rtol per reference tensor dtype (e.g. {"float32": 1e-4})."""
    return structure_problem(out, ref, path) or _values_problem(out, ref, rtol, atol, path, by_dtype or {})


def _values_problem(
    out: Any, ref: Any, rtol: float, atol: float, path: str, by_dtype: dict[str, float]
) -> str | None:
    """The first value beyond tolerance, in two structures already known to match."""
    if isinstance(ref, torch.Tensor):
        tol = by_dtype.get(str(ref.dtype).removeprefix("torch."))
        if tol is not None:
            rtol = atol = tol
        o, r = out.detach().to(ref.device), ref.detach()
        if o.is_floating_point() or o.is_complex():
            bad = ~torch.isfinite(o) & torch.isfinite(r)
            if bool(bad.any()):
                return f"{path}: NaN/Inf in {int(bad.sum())} of {o.numel()} elements where the reference is finite"
            # float32 is exact for half/bfloat16 values and keeps big outputs affordable
            wide = torch.promote_types(o.dtype, torch.float32)
            o, r = o.to(wide), r.to(wide)
            close = torch.isclose(o, r, rtol=rtol, atol=atol, equal_nan=True)
        else:
            close = o == r
        if not bool(close.all()):
            wrong = ~close
            idx = tuple(int(i) for i in wrong.nonzero()[0])
            diff = (o.double() - r.double()).abs()
            diff = diff[torch.isfinite(diff)]
            worst = float(diff.max()) if diff.numel() else float("nan")
            return (
                f"{path}: mismatch beyond tolerance (rtol={rtol:g}, atol={atol:g}) in {int(wrong.sum())} "
                f"of {o.numel()} elements; first at {list(idx)}: got {o[idx].item():.6g}, "
                f"expected {r[idx].item():.6g}; max abs error {worst:.3g}"
            )
        return None
    if isinstance(ref, (tuple, list)):
        for i, (o, r) in enumerate(zip(out, ref, strict=True)):
            problem = _values_problem(o, r, rtol, atol, f"{path}[{i}]", by_dtype)
            if problem:
                return problem
        return None
    if isinstance(ref, dict):
        for k in ref:
            problem = _values_problem(out[k], ref[k], rtol, atol, f"{path}[{k!r}]", by_dtype)
            if problem:
                return problem
        return None
    if (
        isinstance(ref, (float, complex))
        and isinstance(out, (int, float, complex))
        and not isinstance(out, bool)
    ):
        # A Python number from a kernel: the same tolerances as a tensor's elements.
        if abs(out - ref) <= atol + rtol * abs(ref) or (out != out and ref != ref):
            return None
        return f"{path}: got {out!r}, expected {ref!r} (rtol={rtol:g}, atol={atol:g})"
    if out != ref:
        return f"{path}: got {out!r}, expected {ref!r}"
    return None
