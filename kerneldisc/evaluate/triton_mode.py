"""Which mode Triton's own library is in: compiled (for a GPU) or interpreted (on the CPU).

Triton decides when a function is decorated whether `@triton.jit` makes a JIT function or an
interpreted one, and its own library (tl.zeros, tl.sum, tl.cdiv, ...) is `@triton.jit` code
decorated at import. The fork server loads Triton to compile (and warms its backend); a process
that must interpret (a CPU harness, a CPU judge whose reference is written in Triton) imports
Triton's Python modules again with TRITON_INTERPRET=1, and a process that must compile does the
reverse. The compiled core (triton._C) is kept either way.
"""

from __future__ import annotations

import os
import sys


def interpreting() -> bool | None:
    """Whether Triton's library is in interpreter mode (None: Triton not loaded or unusual)."""
    if "triton" not in sys.modules:
        return None
    try:
        import triton.language as tl
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction
    except Exception:  # noqa: BLE001 - an unusual Triton: leave it as it is
        return None
    if isinstance(tl.zeros, InterpretedFunction):
        return True
    return False if isinstance(tl.zeros, JITFunction) else None


def ensure(interpret: bool) -> None:
    """Triton's library in the mode asked for, importing its Python modules again if needed."""
    if interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    else:
        os.environ.pop("TRITON_INTERPRET", None)
    if interpreting() in (None, interpret):
        return
    for name in [n for n in sys.modules if n.split(".")[0] == "triton" and not n.startswith("triton._C")]:
        del sys.modules[name]
    import triton.language  # noqa: F401
