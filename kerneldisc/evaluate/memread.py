"""The judge reads a stopped harness process's outputs straight from its memory.

`/proc/<pid>/mem` and `/proc/<pid>/maps` are opened right after the harness process is forked,
while it may still be read (a process that is not root cannot open them once the harness has
made itself non-dumpable; an open descriptor keeps working). Reads go through the kernel: no
code of the candidate's process runs, and the judge only reads while every process of the
candidate is stopped. Where an output lives comes from the harness (a pointer, dtype, shape and
strides); a wrong pointer yields wrong bytes or an unreadable range, never anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from kerneldisc.evaluate.arena import span_elements

_MAX_ADDRESS = 1 << 57


class MemoryReadError(Exception):
    """A range of the process's memory could not be read (unmapped, or not memory at all)."""


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    device: tuple[int, int]
    inode: int
    path: str


class ProcessMemory:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        self._maps = os.open(f"/proc/{pid}/maps", os.O_RDONLY | os.O_CLOEXEC)

    def read(self, address: int, nbytes: int) -> bytes:
        if not 0 < address < _MAX_ADDRESS or nbytes < 0 or address + nbytes > _MAX_ADDRESS:
            raise MemoryReadError(f"address {address:#x} (+{nbytes}) is not a user-space address")
        chunks = []
        done = 0
        while done < nbytes:
            try:
                chunk = os.pread(self._mem, min(nbytes - done, 1 << 24), address + done)
            except OSError as exc:
                raise MemoryReadError(f"{address + done:#x}: {exc.strerror}") from None
            if not chunk:
                raise MemoryReadError(f"{address + done:#x}: not mapped")
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)

    def tensor(self, address: int, dtype: torch.dtype, shape: list[int], stride: list[int]) -> torch.Tensor:
        """A contiguous copy of the strided tensor at `address`."""
        probe = torch.empty(0, dtype=dtype)
        n = span_elements(torch.empty_strided(shape, stride, dtype=dtype, device="meta"))
        raw = bytearray(self.read(address, n * probe.element_size())) if n else bytearray()
        flat = torch.frombuffer(raw, dtype=torch.uint8).view(dtype) if n else torch.empty(0, dtype=dtype)
        return flat.as_strided(shape, stride).clone() if n else torch.empty(shape, dtype=dtype)

    def mappings(self) -> list[Mapping]:
        os.lseek(self._maps, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._maps, 1 << 16):
            chunks.append(chunk)
        found = []
        for line in b"".join(chunks).decode(errors="replace").splitlines():
            parts = line.split(None, 5)
            if len(parts) < 5:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            major, minor = (int(x, 16) for x in parts[3].split(":"))
            found.append(Mapping(lo, hi, (major, minor), int(parts[4]), parts[5] if len(parts) > 5 else ""))
        return found

    def close(self) -> None:
        from kerneldisc.evaluate.sandbox import close_fds

        close_fds(self._mem, self._maps)


def overlaps(address: int, nbytes: int, regions: list[Mapping]) -> bool:
    return nbytes > 0 and any(address < m.end and m.start < address + nbytes for m in regions)
