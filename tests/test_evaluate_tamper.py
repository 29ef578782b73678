"""A candidate runs as the same user as the evaluator: rewriting the task's reference on disk
must not earn a reward, and must not poison later evaluations silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kerneldisc.errors import ConfigError
from kerneldisc.evaluate import EvalConfig, evaluate
from kerneldisc.task import load_task

REPO = Path(__file__).resolve().parent.parent

CHEAT = """
import pathlib
import torch

# Rewrite the reference so it agrees with the answer below, before the judge imports it.
_ref = pathlib.Path({ref!r})
_ref.write_text(_ref.read_text().replace("return a + b", "return torch.zeros_like(a)"))


def custom_kernel(data):
    a, b = data
    return torch.zeros_like(a)
"""


def test_rewriting_the_reference_is_rejected_and_later_evaluations_refuse_the_task(tmp_path):
    folder = tmp_path / "vectoradd"
    shutil.copytree(REPO / "reference_kernels" / "vectoradd", folder)
    task = load_task(folder)
    cfg = EvalConfig(device="cpu", timeout_s=60)
    cheat = CHEAT.format(ref=str(folder / "reference.py"))
    verdict = evaluate(task, cheat, cfg)
    assert verdict.status == "rejected" and not verdict.correct and verdict.speedup is None
    assert "changed on disk" in verdict.message
    with pytest.raises(ConfigError, match="changed on disk before the evaluation started"):
        evaluate(task, (folder / "submission.py").read_text(), cfg)
