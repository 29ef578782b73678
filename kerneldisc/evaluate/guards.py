"""Anti-gaming checks that run inside the candidate's child, around the candidate's code.

Captured before the candidate is imported: the clock functions and CUDA timing entry points
(so patching them is noticed), and the set of live threads (so a thread the candidate leaves
working after a call — work finishing after the timer stopped — is noticed).

Threads started later are not all the candidate's doing: `torch.compile` leaves an idle
`ThreadPoolExecutor` worker and tqdm's monitor behind, and a candidate may keep a pool of its
own. A thread alive after a call is therefore judged by what it does, not by existing. It is a
violation if it uses the CPU after the call returned — read from the kernel's per-thread
accounting in /proc, which Python code cannot fake — between timed calls (from `mark`, just
after a call, to the check just before the next one) and over a short window after test and
re-checked calls; or if, in those windows, a frame of the candidate's own code is on its stack
(running, sleeping or waiting there is work in progress). A thread blocked in library code and
using no CPU is tolerated. What such a thread might do later shows in the outputs: the
output-stability check spans the same window, and test and re-checked timed outputs are
compared with the reference.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kerneldisc.evaluate.seal import Seal

_CLOCKS = ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns", "process_time")
# A pool worker handing back a result finishes its bookkeeping within microseconds of the
# caller waking up (measured: about 4 us); anything above this in the window is work.
CPU_TOLERANCE_NS = 1_000_000
# A thread that is runnable but has barely run (a starved one on a loaded machine) is
# sampled again every step, up to this long, before it is called busy.
SETTLE_STEP_S = 0.005
SETTLE_MAX_S = 0.1
_sleep = time.sleep
_monotonic = time.monotonic


def thread_cpu_ns(native_id: int) -> int | None:
    """CPU time one thread of this process has used, from the kernel; None if it is gone or
    /proc is missing."""
    task = f"/proc/self/task/{native_id}"
    try:
        return int(_read(f"{task}/schedstat").split()[0])  # nanoseconds on a CPU
    except (OSError, ValueError, IndexError):
        pass
    try:
        # Kernels without schedstat: user + system time in clock ticks (coarser, still honest).
        fields = _read(f"{task}/stat").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def thread_state(native_id: int) -> str | None:
    """The kernel's scheduler state of one thread of this process (R running or runnable,
    S sleeping, D uninterruptible, ...); None if it is gone or /proc is missing."""
    try:
        return _read(f"/proc/self/task/{native_id}/stat").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _read(path: str) -> str:
    # os.open/os.read rather than open(): a few microseconds instead of tens, between timed calls
    # (and schedstat rather than stat where it will do: the kernel builds it with far less work)
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode()
    finally:
        os.close(fd)


def interception_hooks() -> list[str]:
    """Hooks through which code runs whenever the harness touches a tensor or calls anything:
    torch dispatch or function modes left active, and profile or trace functions. None of these
    is left set by a kernel that merely computes; all of them let a call return an empty tensor
    that is filled only when the harness reads it."""
    import torch
    from torch.utils._device import DeviceContext

    found = []
    if torch._C._len_torch_dispatch_stack() > 0:
        found.append("a TorchDispatchMode left active")
    functions = [torch._C._get_function_stack_at(i) for i in range(torch._C._len_torch_function_stack())]
    # torch.set_default_device pushes exactly this mode; it only picks the device of factories.
    if any(type(mode) is not DeviceContext for mode in functions):
        found.append("a TorchFunctionMode left active")
    for label, getter in (
        ("sys.setprofile", sys.getprofile),
        ("sys.settrace", sys.gettrace),
        ("threading.setprofile", getattr(threading, "getprofile", lambda: None)),
        ("threading.settrace", getattr(threading, "gettrace", lambda: None)),
    ):
        if getter() is not None:
            found.append(label)
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+
    if monitoring is not None and any(monitoring.get_tool(i) for i in range(6)):
        found.append("sys.monitoring")
    return found


@dataclass
class Guards:
    # Immutable containers: the guards' own attributes are sealed by identity (see seal.py), so
    # their contents must not be changeable in place either.
    originals: tuple[tuple[str, Any, str, Any], ...] = ()
    threads_before: frozenset[int] = frozenset()
    candidate_dir: str = ""  # code from files under it is the candidate's own
    marks: dict[int, int | None] = field(default_factory=dict)  # CPU ns by thread ident
    seal: Seal | None = None  # the harness's own code and what it calls (set by the worker)
    wide_seal: Seal | None = None  # large tables (torch's public names), checked less often

    @classmethod
    def capture(cls, cuda: bool, candidate_dir: str = "") -> Guards:
        originals = [(f"time.{n}", time, n, getattr(time, n)) for n in _CLOCKS]
        if cuda:
            import torch

            originals.append(("torch.cuda.synchronize", torch.cuda, "synchronize", torch.cuda.synchronize))
            originals.append(("torch.cuda.Event", torch.cuda, "Event", torch.cuda.Event))
            for n in ("record", "elapsed_time", "synchronize"):
                originals.append((f"torch.cuda.Event.{n}", torch.cuda.Event, n, getattr(torch.cuda.Event, n)))
        before = frozenset({t.ident for t in threading.enumerate()} | set(sys._current_frames()))
        candidate_dir = os.path.abspath(candidate_dir) + os.sep if candidate_dir else ""
        return cls(tuple(originals), before, candidate_dir)

    def patched(self) -> list[str]:
        """Names of captured clock/timing functions that are no longer the originals."""
        return [name for name, owner, attr, orig in self.originals if getattr(owner, attr, None) is not orig]

    def tampered(self, wide: bool = True) -> str | None:
        """Why the timing functions or the harness's code in this process cannot be trusted, or None."""
        patched = self.patched()
        if patched:
            return f"candidate replaced timing functions: {', '.join(patched)}"
        hooks = interception_hooks()
        if hooks:
            return (
                f"candidate left hooks that run code inside the harness's own calls: {', '.join(hooks)} "
                "(an output could be computed when the evaluator reads it instead of inside the call)"
            )
        seals = (self.seal, self.wide_seal) if wide else (self.seal,)
        broken = [label for seal in seals if seal is not None for label in seal.broken()]
        if broken:
            more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
            return (
                f"candidate changed code the evaluator runs in its process: {', '.join(broken[:5])}{more} "
                "(a kernel must not patch the harness, torch or json; define functions of its own instead)"
            )
        return None

    def foreign_threads(self) -> list[threading.Thread]:
        """Threads started after capture that are still alive."""
        return [t for t in threading.enumerate() if t.ident not in self.threads_before and t.is_alive()]

    def mark(self) -> None:
        """Note the CPU time of every foreign thread now, just after a call returned, so that the
        next `violation` judges their activity since then without having to sleep."""
        self.marks = {t.ident: thread_cpu_ns(t.native_id) for t in self.foreign_threads()}

    def violation(self, window_s: float = 0.0, wide: bool = True, seal: bool = True) -> str | None:
        """Why the candidate's process is not in a fair state after a call, or None.

        Foreign threads are judged on their CPU use since the last `mark` (or since now), over at
        least `window_s`. With `window_s` 0 (between timed calls) nothing sleeps and only CPU
        time is read: a sleep right before a timed call leaves caches cold and slows that call
        down. With a window, threads' stacks are looked at too, and a thread still runnable at
        its end (one a loaded machine starved) is looked at again for up to SETTLE_MAX_S."""
        tampered = self.tampered(wide) if seal else None
        if tampered:
            return tampered
        marks, self.marks = self.marks, {}
        return self._thread_violation(window_s, marks)

    def _thread_violation(self, window_s: float, marks: dict[int, int | None]) -> str | None:
        threads = self.foreign_threads()
        # Walking other threads' stacks right before a timed call slowed a 2 us CPU call to about
        # 10 us (measured), so between timed calls only CPU time is read.
        in_code = self._in_candidate_code(threads) if window_s > 0 else []
        if in_code:
            return _left_running(in_code)
        if not threads:
            return None
        first = {t: marks[t.ident] if t.ident in marks else thread_cpu_ns(t.native_id) for t in threads}
        started = _monotonic()
        if window_s > 0:
            _sleep(window_s)
        while True:
            busy, runnable = [], []
            for t in threads:
                now = thread_cpu_ns(t.native_id)
                if not t.is_alive():
                    continue  # it finished; a late write shows in the outputs
                if first[t] is None or now is None:
                    busy.append(f"{t.name}: its CPU use cannot be read")
                elif now - first[t] > CPU_TOLERANCE_NS:
                    busy.append(f"{t.name}: {(now - first[t]) / 1e6:.1f} ms of CPU")
                elif window_s > 0 and thread_state(t.native_id) in ("R", "D"):
                    runnable.append(f"{t.name}: still runnable {_monotonic() - started:.3f} s later")
            in_code = self._in_candidate_code(threads) if window_s > 0 else []
            if busy or in_code:
                return _left_running(busy + in_code)
            if not runnable:
                return None
            if _monotonic() - started >= SETTLE_MAX_S:
                return _left_running(runnable)
            _sleep(SETTLE_STEP_S)

    def _in_candidate_code(self, threads: list[threading.Thread]) -> list[str]:
        """Threads started since capture with a frame of the candidate's own code on their stack:
        still working for it. Python threads started without the threading module count too
        (their CPU time cannot be read: they have no native id)."""
        if not self.candidate_dir:
            return []
        names = {t.ident: t.name for t in threads}
        me = threading.get_ident()
        found = []
        for ident, frame in sys._current_frames().items():
            if ident in self.threads_before or ident == me:
                continue
            while frame is not None:
                code = frame.f_code
                if code.co_filename.startswith(self.candidate_dir):
                    name = names.get(ident, f"thread {ident} started without the threading module")
                    found.append(
                        f"{name} in {code.co_name} at {os.path.basename(code.co_filename)}:{frame.f_lineno}"
                    )
                    break
                frame = frame.f_back
        return found


def _left_running(threads: list[str]) -> str:
    return (
        f"candidate left {len(threads)} thread(s) running after returning ({'; '.join(threads[:3])}); "
        "all work must finish before custom_kernel returns"
    )
