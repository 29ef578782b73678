"""peft 0.21 on transformers 5 asks for `is_gradient_checkpointing`, deprecated in v5: a
FutureWarning our users can do nothing about, silenced where kerneldisc builds or loads adapters."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_peft() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
