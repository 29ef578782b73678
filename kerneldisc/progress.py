"""Progress bars for long work: tqdm on a terminal, silent when output goes to a file or pipe."""

from __future__ import annotations

import os
import sys

from tqdm import tqdm


def bar(total: int, desc: str, unit: str = "it") -> tqdm:
    # KERNELDISC_PROGRESS=1 forces bars on (useful under tmux logs); =0 turns them off.
    forced = os.environ.get("KERNELDISC_PROGRESS")
    disable = (forced == "0") if forced is not None else not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=disable, dynamic_ncols=True)
