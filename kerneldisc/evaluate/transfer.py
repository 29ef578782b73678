"""How an output crosses from the candidate's process to the judge: raw tensor bytes under a JSON
header, nothing pickled.

`torch.save` would run pickling hooks in the candidate's process (`Tensor.__reduce_ex__`,
`torch.serialization`'s private functions), any of which the candidate can replace so that what
is written differs from what was returned (a call that does no work, with the answer computed at
save time, outside the timer). Here the bytes are read with a handful of torch's public tensor
methods, which the harness's seal checks right before, and numpy's `tobytes`, a method of a C type
that Python code cannot replace. The judge rebuilds the tensors itself and loads nothing that could
run code.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import torch

_HEADER = struct.Struct("<Q")
_SCALARS = (bool, int, float, str, type(None))


class TransferError(ValueError):
    """A payload that is not what `encode` writes."""


def encode(out: Any) -> bytes:
    """The output (tensors, tuples, lists, dicts and scalars) as one byte string."""
    chunks: list[bytes] = []
    metas: list[dict[str, Any]] = []

    def tree(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            data = obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            metas.append({"dtype": str(obj.dtype).removeprefix("torch."), "shape": list(obj.shape),
                          "nbytes": len(data)})  # fmt: skip
            chunks.append(data)
            return {"t": len(metas) - 1}
        if isinstance(obj, tuple):
            return {"tuple": [tree(v) for v in obj]}
        if isinstance(obj, list):
            return {"list": [tree(v) for v in obj]}
        if isinstance(obj, dict):
            return {"dict": [[_scalar(k), tree(v)] for k, v in obj.items()]}
        return {"s": _scalar(obj)}

    header = json.dumps({"tree": tree(out), "tensors": metas}).encode()
    return _HEADER.pack(len(header)) + header + b"".join(chunks)


def decode(payload: bytes, device: str) -> Any:
    """The structure `encode` wrote, with its tensors on `device`."""
    try:
        (size,) = _HEADER.unpack_from(payload, 0)
        header = json.loads(payload[_HEADER.size : _HEADER.size + size])
        offset = _HEADER.size + size
        tensors = []
        for meta in header["tensors"]:
            dtype = getattr(torch, str(meta["dtype"]), None)
            if not isinstance(dtype, torch.dtype):
                raise TransferError(f"unknown dtype {meta['dtype']!r}")
            shape = [int(n) for n in meta["shape"]]
            nbytes = int(meta["nbytes"])
            raw = bytearray(payload[offset : offset + nbytes])
            offset += nbytes
            if len(raw) != nbytes:
                raise TransferError("payload shorter than its header says")
            flat = torch.frombuffer(raw, dtype=torch.uint8) if nbytes else torch.empty(0, dtype=torch.uint8)
            tensors.append(flat.view(dtype).reshape(shape).to(device))
        if offset != len(payload):
            raise TransferError("payload longer than its header says")
        return _rebuild(header["tree"], tensors)
    except TransferError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, struct.error) as exc:
        raise TransferError(f"{type(exc).__name__}: {exc}") from None


def _rebuild(node: Any, tensors: list[torch.Tensor]) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise TransferError("malformed header")
    ((kind, value),) = node.items()
    if kind == "t":
        return tensors[int(value)]
    if kind == "tuple":
        return tuple(_rebuild(v, tensors) for v in value)
    if kind == "list":
        return [_rebuild(v, tensors) for v in value]
    if kind == "dict":
        return {k: _rebuild(v, tensors) for k, v in value}
    if kind == "s":
        return value
    raise TransferError(f"malformed header entry {kind!r}")


def _scalar(value: Any) -> Any:
    if not isinstance(value, _SCALARS):
        raise TypeError(
            f"an output may hold tensors, tuples, lists, dicts and scalars, not {type(value).__name__}"
        )
    return value
