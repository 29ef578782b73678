"""kerneldisc's own source files must not change under a running evaluator.

A candidate runs as the same user as the evaluator, so it could rewrite the judge's code on disk;
the next judge started would then run that code. The caller (a long-lived process that imported
kerneldisc before any candidate ran) hashes the package once and checks it around every
evaluation: a change during an evaluation makes that verdict `rejected`, and a change found
before one starts is a caller error, so a poisoned installation is never trusted again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from kerneldisc.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class SourceGuard:
    def __init__(self, files: list[Path]):
        self.files = sorted(files)
        self.digest = self._digest()

    @classmethod
    def for_package(cls) -> SourceGuard:
        return cls(list(PACKAGE_ROOT.rglob("*.py")))

    def _digest(self) -> str:
        h = hashlib.sha256()
        for path in self.files:
            h.update(str(path).encode() + b"\0")
            try:
                h.update(path.read_bytes())
            except OSError:
                h.update(b"<missing>")
        return h.hexdigest()

    def changed(self) -> bool:
        return self._digest() != self.digest

    def check_before(self) -> None:
        if self.changed():
            raise ConfigError(
                f"kerneldisc's own files under {PACKAGE_ROOT} changed on disk since this process started; "
                "the evaluator will not run code it did not start with (reinstall, then restart)"
            )


def purge_bytecode_since(since: float, package: Path, folders: list[Path]) -> list[Path]:
    """Delete the bytecode caches anywhere in `package` and directly in each of `folders` (a
    task's, never searched deeper: a KernelBench file may sit in a home directory) whose inode
    changed at or after `since` (ctime, which no process can set back), and return them: they
    are recompiled when next needed."""
    caches = [*package.rglob("__pycache__/*"), *(p for d in folders for p in (d / "__pycache__").glob("*"))]
    removed = []
    for path in caches:
        try:
            if path.is_file() and path.stat().st_ctime >= since - 0.05:  # the kernel's coarse clock
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


_guard: SourceGuard | None = None


def package_guard() -> SourceGuard:
    global _guard
    if _guard is None:
        _guard = SourceGuard.for_package()
    return _guard
