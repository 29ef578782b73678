"""Defence in depth inside a harness process: notice a candidate that patched the clocks or
builtins, or left a profile/trace function or a torch dispatch mode behind.

Nothing the verdict's correctness or speed rests on runs in the candidate's process any more
(the judge makes the inputs, charges the CPU time and reads the outputs itself), so these
patches gain nothing; this only makes the verdict say what the candidate tried (`rejected`)
instead of judging it as if it had not. A candidate can disable it, and then gains nothing
either. It runs after each test call and at the end of each benchmark, never in a timed call.
"""

from __future__ import annotations

import builtins
import sys
import time

_CLOCKS = ("perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns",
           "process_time", "process_time_ns", "thread_time", "thread_time_ns")  # fmt: skip
_BUILTINS = ("isinstance", "type", "len", "getattr", "id", "hasattr", "issubclass", "callable")


class Tripwire:
    def __init__(self) -> None:
        self.clocks = {name: getattr(time, name) for name in _CLOCKS if hasattr(time, name)}
        self.builtins = {name: getattr(builtins, name) for name in _BUILTINS}
        self.watched: list[tuple[object, str, object, object]] = []

    def watch(self, owner: object, *names: str) -> None:
        """Notice if `owner.name` is replaced or its code rewritten (the harness's own per-call
        code: a candidate that trims it would be charged less than the reference for the same
        work; see docs/evaluator.md, "The handshake")."""
        for name in names:
            value = getattr(owner, name)
            self.watched.append((owner, name, value, getattr(value, "__code__", None)))

    def check(self) -> str | None:
        """What the candidate changed, in words, or None."""
        for owner, name, value, code in self.watched:
            now = getattr(owner, name, None)
            if now is not value or getattr(now, "__code__", None) is not code:
                label = getattr(owner, "__qualname__", getattr(owner, "__name__", "?"))
                return f"the candidate replaced the evaluator's {label}.{name} in its process"
        for name, fn in self.clocks.items():
            if getattr(time, name, None) is not fn:
                return f"the candidate replaced time.{name} (timing is the evaluator's, not the kernel's)"
        for name, fn in self.builtins.items():
            if getattr(builtins, name, None) is not fn:
                return f"the candidate replaced builtins.{name}"
        if sys.getprofile() is not None or sys.gettrace() is not None:
            return "the candidate left a sys.setprofile/settrace function installed"
        return _torch_modes()


def _torch_modes() -> str | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    from torch.utils._device import DeviceContext

    if torch._C._len_torch_dispatch_stack() > 0:
        return "the candidate left a TorchDispatchMode active after returning"
    modes = [torch._C._get_function_stack_at(i) for i in range(torch._C._len_torch_function_stack())]
    # torch.set_default_device pushes exactly this mode; it only picks the device of factories.
    if any(type(mode) is not DeviceContext for mode in modes):
        return "the candidate left a TorchFunctionMode active after returning"
    return None
