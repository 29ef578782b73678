"""GPU MODE's output-buffer convention: a task may hand its kernel the output buffer inside
`data`; writing into it (and returning it) is the contract, writing into a real input is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from kerneldisc.evaluate import EvalConfig, evaluate
from kerneldisc.task import load_task

pytestmark = pytest.mark.slow

CANDIDATES = Path(__file__).parent / "candidates"
CFG = EvalConfig(device="cpu", timeout_s=120, time_budget_s=0.1)


@pytest.fixture(scope="module")
def task():
    return load_task(CANDIDATES / "outbuf_task")


def test_a_kernel_that_fills_the_handed_over_buffer_and_returns_it_is_correct(task):
    v = evaluate(task, CANDIDATES / "outbuf_fills_buffer.py", CFG)
    assert v.status == "ok", v.message
    assert v.speedup > 0 and v.reference_runtime_us > 0  # the reference, which writes it too, is timed


def test_a_kernel_that_ignores_the_buffer_is_correct_too(task):
    assert evaluate(task, CANDIDATES / "outbuf_new_tensor.py", CFG).status == "ok"


def test_writing_into_a_real_input_still_faults(task):
    v = evaluate(task, CANDIDATES / "outbuf_writes_input.py", CFG)
    assert v.status == "crash" and "read-only" in v.message and not v.correct
