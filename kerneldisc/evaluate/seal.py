"""The harness's own code, sealed inside the candidate's process.

The candidate's child runs the timing loop, the clocks, the input generator and the checks in the
same process as the candidate, which can reach all of them through `sys.modules` or `gc`. A
candidate that replaces a harness function (a timer that divides its result, a check that always
passes), rewrites a function's code or defaults, swaps a value a closure holds, rebinds a module
constant (the stability window), or replaces `torch.randn` so that untimed inputs are smaller than
the checked ones would write its own verdict.

The seal records, before the candidate is imported, what each such name is bound to; `broken()`
names whatever has changed since. Sealed:

- every non-dunder name bound in the harness modules (the evaluator's modules, the task's reference
  module, and `json` on the reply path), the methods and attributes of the classes they define,
  and each of their functions' code, defaults and closure contents;
- the attributes of chosen live objects (the session, the guards, the reply channel, the problem);
- the public names of `torch`, `torch.Tensor` and `torch.nn.functional`, which
  input generation and the checks call.

This raises the bar; it is not a wall. A candidate runs arbitrary code in that process and could in
principle rewrite the seal's own state first; that residual risk is stated in docs/evaluator.md.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

_MISSING = object()
_FUNCTION_ATTRS = ("__code__", "__defaults__", "__kwdefaults__")
# Kinds of entry: how the current value is read back.
_DICT, _ATTR, _CELL = 0, 1, 2


class Seal:
    def __init__(self, wrapper_codes: Iterable[types.CodeType] = ()) -> None:
        self._entries: list[tuple[str, int, Any, str, Any]] = []
        self._seen: set[int] = set()
        # Code objects of library wrappers that may replace a sealed function by a wrapper of that
        # same function: importing torch._dynamo (torch.compile) rebinds torch.manual_seed to
        # torch._disable_dynamo(torch.manual_seed).
        self._wrapper_codes = tuple(wrapper_codes)

    # -- recording -------------------------------------------------------------------------

    def add_module(self, module: types.ModuleType, label: str | None = None) -> None:
        """Every non-dunder name the module binds; deep for what the module itself defines."""
        self.add_namespace(vars(module), label or module.__name__)

    def add_namespace(self, namespace: dict[str, Any], label: str) -> None:
        """A module's globals (also a module that was never put in sys.modules, such as the
        task's reference, reached through one of its functions' __globals__)."""
        if id(namespace) in self._seen:
            return
        self._seen.add(id(namespace))
        module_name = namespace.get("__name__")
        for key, value in list(namespace.items()):
            if key.startswith("__") and key.endswith("__"):
                continue
            self._entries.append((f"{label}.{key}", _DICT, namespace, key, value))
            if _defined_in(value, module_name):
                self._deep(f"{label}.{key}", value)

    def add_function(self, label: str, fn: Any) -> None:
        """One function's code, defaults and closure contents (and its module's globals)."""
        if isinstance(fn, types.FunctionType):
            self._deep(label, fn)
            self.add_namespace(fn.__globals__, str(fn.__globals__.get("__name__", label)))

    def add_object(self, label: str, obj: Any, skip: Iterable[str] = ()) -> None:
        """The attributes of one live object (its __dict__ as it is now), minus `skip`."""
        skipped = set(skip)
        for key, value in list(vars(obj).items()):
            if key not in skipped:
                self._entries.append((f"{label}.{key}", _DICT, vars(obj), key, value))

    def add_public(self, owner: Any, label: str, skip: Iterable[str] = ()) -> None:
        """Identity of the public names a module or class exposes now (shallow: no code checks)."""
        skipped = set(skip)
        if isinstance(owner, type):
            for key in dir(owner):
                if not key.startswith("_") and key not in skipped:
                    self._entries.append((f"{label}.{key}", _ATTR, owner, key, _class_member(owner, key)))
            return
        for key, value in list(vars(owner).items()):
            if not key.startswith("_") and callable(value) and key not in skipped:
                self._entries.append((f"{label}.{key}", _DICT, vars(owner), key, value))

    def _deep(self, label: str, value: Any) -> None:
        if id(value) in self._seen:
            return
        self._seen.add(id(value))
        if isinstance(value, type):
            for key, member in list(value.__dict__.items()):
                if key in ("__dict__", "__weakref__", "__doc__"):
                    continue
                self._entries.append((f"{label}.{key}", _ATTR, value, key, member))
                for fn in _functions_of(member):
                    self._deep(f"{label}.{key}", fn)
        elif isinstance(value, types.FunctionType):
            for attr in _FUNCTION_ATTRS:
                self._entries.append((f"{label}.{attr}", _ATTR, value, attr, getattr(value, attr)))
            for i, cell in enumerate(value.__closure__ or ()):
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell (a name assigned later)
                    continue
                self._entries.append((f"{label} (closure {i})", _CELL, cell, "", contents))

    # -- checking --------------------------------------------------------------------------

    def broken(self) -> list[str]:
        """Labels of everything rebound, replaced or rewritten since it was recorded."""
        changed = []
        for label, kind, owner, key, original in self._entries:
            if kind == _DICT:
                now = owner.get(key, _MISSING)
            elif kind == _ATTR:
                now = _class_member(owner, key) if isinstance(owner, type) else getattr(owner, key, _MISSING)
            else:
                try:
                    now = owner.cell_contents
                except ValueError:
                    now = _MISSING
            if now is not original and not self._library_wrapper(now, original):
                changed.append(label)
        return changed

    def _library_wrapper(self, value: Any, original: Any) -> bool:
        if not isinstance(value, types.FunctionType) or not any(
            value.__code__ is code for code in self._wrapper_codes
        ):
            return False
        return any(_contents(cell) is original for cell in value.__closure__ or ())

    def __len__(self) -> int:
        return len(self._entries)


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return _MISSING


def _class_member(cls: type, key: str) -> Any:
    # Lookup along the MRO in the classes' own dicts, not getattr: a descriptor's __get__ returns a
    # new object each time, and a member replaced on a subclass must show even if it was inherited.
    for klass in cls.__mro__:
        if key in klass.__dict__:
            return klass.__dict__[key]
    return _MISSING


def _defined_in(value: Any, module_name: str) -> bool:
    return isinstance(value, (type, types.FunctionType)) and getattr(value, "__module__", None) == module_name


def _functions_of(member: Any) -> list[types.FunctionType]:
    if isinstance(member, types.FunctionType):
        return [member]
    if isinstance(member, (staticmethod, classmethod)):
        return [member.__func__] if isinstance(member.__func__, types.FunctionType) else []
    if isinstance(member, property):
        return [f for f in (member.fget, member.fset, member.fdel) if isinstance(f, types.FunctionType)]
    return []
