"""Writing files and folders so that a crash at any instant leaves either the old version or the
new one, never half of either: write beside the target, flush to disk, rename over it, and make
the rename durable. Everything kerneldisc persists goes through here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n")


def write_lines(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A JSON-lines file: one record per line."""
    write_text(path, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records))


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file: none when it does not exist; a torn last line (a writer
    killed mid-line, in a file not written through here) is skipped; any other bad line is an
    error naming the file and line."""
    from kerneldisc.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ConfigError(f"{path}:{number}: not valid JSON") from None
    return records


def replace_dir(path: Path, fill: Callable[[Path], None]) -> None:
    """`fill(tmp)` makes a sibling folder, which then replaces `path`. While the old folder is
    moved aside a crash leaves it as `.NAME.old`, which `existing_dir` falls back to."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fill(tmp)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(path.parent)


def existing_dir(path: Path) -> Path:
    """`path`, or the `.NAME.old` an interrupted `replace_dir` left in its place."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    return old if not path.exists() and old.exists() else path


def fsync_dir(directory: Path) -> None:
    """Make renames in `directory` durable (a no-op where folders cannot be opened or synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def no_interrupt():
    """Hold a Ctrl-C (SIGINT) until the block is done, then raise it (main thread only): a
    checkpoint and the views published from it are written whole or, after a kill, recovered,
    but never left half-done by a Ctrl-C that Python turns into an exception mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
