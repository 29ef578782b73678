"""Rewriting the task's reference or kerneldisc's sources on disk must not earn a reward, and must
not poison later evaluations silently. A candidate that runs as the caller's user (always, when
the caller is not root; `isolate_user=False` otherwise) can write them and is caught; one that
runs as the evaluator's unprivileged user (the caller is root) cannot write them at all."""

from __future__ import annotations

import os
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
    cfg = EvalConfig(device="cpu", timeout_s=60, isolate_user=False)
    cheat = CHEAT.format(ref=str(folder / "reference.py"))
    verdict = evaluate(task, cheat, cfg)
    assert verdict.status == "rejected" and not verdict.correct and verdict.speedup is None
    assert "changed on disk" in verdict.message
    with pytest.raises(ConfigError, match="changed on disk before the evaluation started"):
        evaluate(task, (folder / "submission.py").read_text(), cfg)


def test_rewriting_kerneldisc_sources_is_rejected_and_later_evaluations_refuse(tmp_path, monkeypatch):
    from kerneldisc.evaluate import api, integrity

    # Stand-in for a source file of the package: the guard watches it like the real ones.
    watched = tmp_path / "judge.py"
    watched.write_text("TRUSTED = True\n")
    guard = integrity.SourceGuard([watched])
    monkeypatch.setattr(api, "package_guard", lambda: guard)
    task = load_task("vectoradd")
    cfg = EvalConfig(device="cpu", timeout_s=60, isolate_user=False)
    submission = (REPO / "reference_kernels" / "vectoradd" / "submission.py").read_text()
    writer = f"import pathlib\npathlib.Path({str(watched)!r}).write_text('TRUSTED = False\\n')\n" + submission
    verdict = evaluate(task, writer, cfg)
    assert verdict.status == "rejected" and "source files changed" in verdict.message
    with pytest.raises(ConfigError, match="changed on disk since this process started"):
        evaluate(task, submission, cfg)


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the evaluator isolates candidates in another user only as root"
)
def test_an_isolated_candidate_cannot_write_the_reference_at_all(tmp_path):
    folder = tmp_path / "vectoradd"
    shutil.copytree(REPO / "reference_kernels" / "vectoradd", folder)
    task = load_task(folder)
    verdict = evaluate(
        task, CHEAT.format(ref=str(folder / "reference.py")), EvalConfig(device="cpu", timeout_s=60)
    )
    assert verdict.status == "compile_error" and "PermissionError" in verdict.message, verdict.message
    assert "return a + b" in (folder / "reference.py").read_text()
    later = evaluate(task, (folder / "submission.py").read_text(), EvalConfig(device="cpu", timeout_s=60))
    assert later.status == "ok", later.message


def test_package_guard_covers_the_judge_and_sees_no_change_in_a_clean_tree():
    from kerneldisc.evaluate.integrity import package_guard

    guard = package_guard()
    assert any(p.name == "judge.py" for p in guard.files)
    assert not guard.changed()
