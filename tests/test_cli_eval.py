"""`kerneldisc eval` as a user runs it: one JSON verdict with --json, a short summary without,
exit 0 whenever a verdict is reached, exit 2 with one line (no traceback) for caller errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = Path(__file__).parent / "candidates"
ADD_TASK = str(CANDIDATES / "add_task")


def kerneldisc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kerneldisc", "eval", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )


def test_json_verdict_for_a_failing_candidate_is_one_object_and_exit_0():
    done = kerneldisc(
        ADD_TASK, str(CANDIDATES / "wrong_values.py"), "--json", "--device", "cpu", "--timeout", "30"
    )
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)  # the whole of stdout is exactly one JSON document
    assert isinstance(verdict, dict)
    assert verdict["status"] == "incorrect" and verdict["correct"] is False
    assert verdict["device"] == "cpu" and verdict["task"] == "add"
    assert verdict["candidate"].endswith("wrong_values.py")
    assert verdict["speedup"] is None and verdict["tests"][0]["passed"] is False


@pytest.mark.slow
def test_human_summary_shows_status_tests_runtime_and_device():
    done = kerneldisc(ADD_TASK, str(CANDIDATES / "add_torch.py"), "--device", "cpu", "--timeout", "30")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("OK  add <- ") and "[device: cpu]" in lines[0]
    assert sum(line.endswith(": pass") for line in lines) == 2
    assert any("runtime" in line and "reference" in line and "speedup" in line for line in lines)


@pytest.mark.slow
def test_kernelbench_file_is_a_task_and_model_new_a_candidate():
    done = kerneldisc(
        str(CANDIDATES / "kb_scale_problem.py"),
        str(CANDIDATES / "kb_scale_new.py"),
        "--json",
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["status"] == "ok", verdict["message"]
    assert verdict["task"] == "kb_scale_problem"


def _assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_candidate_file_exits_2_with_one_line():
    _assert_one_line_error(
        kerneldisc(ADD_TASK, "no/such/candidate.py"), "no/such/candidate.py", "does not exist"
    )


def test_unknown_task_exits_2_with_one_line():
    _assert_one_line_error(
        kerneldisc("no_such_task", str(CANDIDATES / "add_torch.py")), "no_such_task", "not found"
    )


def test_malformed_task_yml_exits_2_naming_the_file(tmp_path):
    (tmp_path / "reference.py").write_text((CANDIDATES / "add_task" / "reference.py").read_text())
    (tmp_path / "task.yml").write_text("tests: [unclosed\n")
    _assert_one_line_error(kerneldisc(str(tmp_path), str(CANDIDATES / "add_torch.py")), "task.yml", "YAML")


def test_bad_device_exits_2_with_one_line():
    _assert_one_line_error(
        kerneldisc(ADD_TASK, str(CANDIDATES / "add_torch.py"), "--device", "gpu0"), "device must be", "gpu0"
    )


def test_with_json_a_caller_error_is_also_one_json_object_on_stdout():
    proc = kerneldisc("no_such_task", str(CANDIDATES / "add_torch.py"), "--json")
    assert proc.returncode == 2
    answer = json.loads(proc.stdout)
    assert "no_such_task" in answer["error"] and answer["kind"] == "TaskError"
