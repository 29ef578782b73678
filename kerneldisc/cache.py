"""Where kerneldisc keeps what it computes once per machine (converted models, roofline
ceilings): the argument, else $KERNELDISC_CACHE, else ~/.cache/kerneldisc."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("KERNELDISC_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kerneldisc"
