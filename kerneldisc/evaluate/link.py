"""The judge's pipes to its caller: one JSON request line in, then the answer key, then one
signed answer line out (see signing.py)."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from kerneldisc.evaluate.signing import sign


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
