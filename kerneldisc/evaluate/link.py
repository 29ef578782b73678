"""JSON lines over pipes: the judge's link to its caller (one request line in, then the answer
key, then one signed answer line out; see signing.py), and the bounded, deadline-aware reader
the caller and the judge use on the pipes of the processes they started."""

from __future__ import annotations

import json
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from kerneldisc.evaluate.sandbox import ChildDied, ChildTimeout
from kerneldisc.evaluate.signing import sign

MAX_MESSAGE_BYTES = 1 << 24
JUDGE_STATUS = struct.Struct("<i")  # a judge's wait status, from the fork server to the caller
POLL_S = 0.5  # how often a silent writer is looked at (`idle`) while a reader waits


class MalformedLine(ChildDied):
    """The writer sent something that is not a line of our protocol: too long, not JSON, not an
    object. The writer is alive and ours to kill: no harness of ours writes that."""


def write_line(fd: int, message: dict[str, Any]) -> None:
    """One JSON line, written whole; ChildDied when the reader is gone."""
    data = json.dumps(message).encode() + b"\n"
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        raise ChildDied() from None


class Outbox:
    """Lines for a reader that may be stopped or may never read (a harness): written without
    blocking, the rest whenever the pipe has room while the judge waits for the reply. A full
    pipe then costs the writer a deadline, never a hang."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.pending = bytearray()

    def put(self, data: bytes) -> None:
        self.pending += data
        self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                written = os.write(self.fd, self.pending)
            except BlockingIOError:
                return
            except OSError:
                raise ChildDied() from None
            del self.pending[:written]


class LineReader:
    """JSON-object lines from a pipe whose writer is not trusted: bounded in size, a deadline,
    and a look at the writer (`idle`, which may raise) whenever it stays silent for POLL_S."""

    def __init__(self, fd: int, limit: int = MAX_MESSAGE_BYTES) -> None:
        self.fd = fd
        self.limit = limit
        self._pending = bytearray()

    def read(
        self, deadline: float, idle: Callable[[], None] | None = None, outbox: Outbox | None = None
    ) -> dict[str, Any]:
        """The next line as a dict (while what is left in `outbox` is written as the pipe takes
        it). ChildTimeout at `deadline`; ChildDied on end of stream, an oversized line or one
        that is not a JSON object."""
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildTimeout()
            writing = [outbox.fd] if outbox is not None and outbox.pending else []
            ready, room, _ = select.select([self.fd], writing, [], min(remaining, POLL_S))
            if room:
                outbox.flush()
            if not ready:
                if room:
                    continue
                if idle is not None:
                    idle()
                continue
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise ChildDied()
            self._pending += chunk
            if len(self._pending) > self.limit:
                raise MalformedLine()
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # malformed, or nested deep enough to break the parser
            raise MalformedLine() from None
        if not isinstance(message, dict):
            raise MalformedLine()
        return message


class SignedLink:
    def __init__(self, cmd_fd: int, reply_fd: int) -> None:
        self._cmd = os.fdopen(cmd_fd, "rb")
        self._reply = os.fdopen(reply_fd, "wb", buffering=0)
        self.key = ""

    def recv(self) -> dict[str, Any] | None:
        line = self._cmd.readline()
        return json.loads(line) if line else None

    def send(self, message: dict[str, Any]) -> None:
        self._reply.write(json.dumps(sign(message, self.key)).encode() + b"\n")

    def send_before_key(self, message: dict[str, Any]) -> None:
        """An answer given before any harness process exists: the key is read first, then used."""
        key_message = self.recv() or {}
        self.key = str(key_message.get("key", ""))
        self.send(message)

    def on_parent_gone(self, action) -> None:
        """Run `action` on a daemon thread once the caller closes the command pipe (it died)."""

        def watch() -> None:
            while self._cmd.readline():
                pass
            action()

        threading.Thread(target=watch, daemon=True, name="kerneldisc-parent-watch").start()
