"""The judge's answer, authenticated for its caller.

The candidate runs as the same user as its judge and caller, so the pipe the caller reads may be
written by more than the judge (a same-user process can reopen a pipe through /proc/<pid>/fd).
The caller sends a fresh random key in the request, before any candidate exists; the judge
sends back its answer as the exact JSON text plus an HMAC of that text under the key. A line
without a valid HMAC did not come from the judge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any


def new_key() -> str:
    return secrets.token_hex(32)


def sign(message: dict[str, Any], key: str) -> dict[str, str]:
    text = json.dumps(message)
    return {"signed": text, "mac": _mac(text, key)}


def open_signed(envelope: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The message inside a signed envelope, or None when the envelope is not the judge's."""
    text, mac = envelope.get("signed"), envelope.get("mac")
    if not isinstance(text, str) or not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(text, key)):
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _mac(text: str, key: str) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()
