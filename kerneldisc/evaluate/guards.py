"""Anti-gaming checks that run inside the candidate's child, around the candidate's code.

Captured before the candidate is imported: the clock functions and CUDA timing entry points
(so patching them is noticed), and the set of live threads (so a thread the candidate leaves
running after a call — work finishing after the timer stopped — is noticed).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

_CLOCKS = ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "process_time")


@dataclass
class Guards:
    originals: dict[str, tuple[Any, str, Any]] = field(default_factory=dict)
    threads_before: set[int] = field(default_factory=set)

    @classmethod
    def capture(cls, cuda: bool) -> Guards:
        originals = {f"time.{n}": (time, n, getattr(time, n)) for n in _CLOCKS}
        if cuda:
            import torch

            originals["torch.cuda.synchronize"] = (torch.cuda, "synchronize", torch.cuda.synchronize)
            originals["torch.cuda.Event"] = (torch.cuda, "Event", torch.cuda.Event)
            for n in ("record", "elapsed_time", "synchronize"):
                originals[f"torch.cuda.Event.{n}"] = (torch.cuda.Event, n, getattr(torch.cuda.Event, n))
        return cls(originals, {t.ident for t in threading.enumerate()})

    def patched(self) -> list[str]:
        """Names of captured clock/timing functions that are no longer the originals."""
        return [
            name
            for name, (owner, attr, orig) in self.originals.items()
            if getattr(owner, attr, None) is not orig
        ]

    def foreign_threads(self) -> list[str]:
        """Threads started after capture that are still alive."""
        return [t.name for t in threading.enumerate() if t.ident not in self.threads_before and t.is_alive()]

    def violation(self) -> str | None:
        patched = self.patched()
        if patched:
            return f"candidate replaced timing functions: {', '.join(patched)}"
        threads = self.foreign_threads()
        if threads:
            return (
                f"candidate left {len(threads)} thread(s) running after returning ({', '.join(threads[:3])}); "
                "all work must finish before custom_kernel returns"
            )
        return None
