"""`kerneldisc discover` refuses bad input with one line and exit 2, before writing anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _discover(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TRITON_INTERPRET="1")
    return subprocess.run(
        [sys.executable, "-m", "kerneldisc", "discover", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_task"], "not found"),
        (["vectoradd", "--steps", "0"], "steps must be at least 1"),
        (["vectoradd", "--steps", "many"], "invalid int value"),
        (["vectoradd", "--policy", "openai"], "--no-train"),
        (["vectoradd", "--device", "tpu"], "device must be"),
        (["vectoradd", "--model", "/nonexistent/model/dir"], "/nonexistent/model/dir"),
        (["--resume", "/nonexistent/run"], "not a kerneldisc run folder"),
        (["vectoradd", "--policy", "vllm"], "kerneldisc[vllm]"),
        (["vectoradd", "--log", "tensorboard", "--log", "mlflow"], "allowed: tensorboard, wandb"),
        ([], "give a TASK"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    extra = [] if "--resume" in args or not args else ["--out", str(out)]
    result = _discover(*args, *extra)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_config_file_errors_name_the_file(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("task: vectoradd\ngroup_size: lots\n")
    result = _discover("--config", str(cfg))
    assert result.returncode == 2
    assert "group_size" in result.stderr and "Traceback" not in result.stderr


def test_resume_refuses_to_change_recorded_settings(tmp_path):
    from kerneldisc.run_folder import RunFolder

    RunFolder.create(tmp_path / "run", {"task": "vectoradd", "groups": 2})
    result = _discover("--resume", str(tmp_path / "run"), "--groups", "5")
    assert result.returncode == 2 and "cannot change groups" in result.stderr


def test_resume_may_change_who_watches_but_nothing_else(tmp_path):
    """--log is not a setting of the run's result: a resume may start, change or stop tracking."""
    from kerneldisc.loop import config_for_resume
    from kerneldisc.run_folder import RunFolder

    RunFolder.create(tmp_path / "run", {"task": "vectoradd", "groups": 2, "log": ["wandb"]})
    assert config_for_resume(tmp_path / "run", {"log": ["tensorboard"], "groups": None}).log == [
        "tensorboard"
    ]
    assert config_for_resume(tmp_path / "run", {"log": ["none"]}).log == []
    assert config_for_resume(tmp_path / "run", {"log": None}).log == ["wandb"]  # not given: as recorded


def test_help_explains_the_flags():
    result = _discover("--help")
    assert result.returncode == 0
    for flag in (
        "--model",
        "--policy",
        "--steps",
        "--groups",
        "--group-size",
        "--gpus",
        "--resume",
        "--no-train",
        "--log",
    ):
        assert flag in result.stdout
