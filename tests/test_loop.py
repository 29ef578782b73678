"""The discovery loop end to end on the CPU: a tiny model trained on scripted replies that are
judged by the real evaluator, the run-folder contract, failures recorded, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file
from test_models import embedded_model, tiny_model  # noqa: F401  (shared fixtures)

from kerneldisc.config import make_config
from kerneldisc.loop import run_discovery
from kerneldisc.run_folder import read_jsonl

REPO = Path(__file__).resolve().parent.parent
SUBMISSION = (REPO / "reference_kernels" / "vectoradd" / "submission.py").read_text()

FAST = SUBMISSION.replace("block = 1024", "block = 4096")
CRASH = SUBMISSION.replace("    a, b = data\n", "    a, b = data\n    raise RuntimeError('boom')\n")
KILLS_ITS_JUDGE = SUBMISSION.replace("import torch\n", "import os\nimport torch\n").replace(
    "    a, b = data\n", "    a, b = data\n    os.kill(os.getppid(), 9)\n"
)
REPLIES = [
    f"Here is a faster kernel.\n```python\n{FAST}```\n",
    "I am not sure what a kernel is.",  # garbage: no code block
    f"```python\n{CRASH}```",
    f"```python\n{KILLS_ITS_JUDGE}```",
]


def _config(tmp_path: Path, model: Path, out: Path, steps: int, **kw):
    script = tmp_path / "replies.yml"
    script.write_text(yaml.safe_dump(REPLIES))
    values = dict(
        task="vectoradd", model=str(model), policy="scripted", script=str(script), steps=steps, groups=2,
        group_size=4, device="cpu", out=str(out), lr=5e-3, lora_rank=4, eval_timeout_s=60, max_new_tokens=64,
    )  # fmt: skip
    values.update(kw)
    return make_config(values)


def _write_config_file(path: Path, cfg) -> None:
    path.write_text(yaml.safe_dump({k: v for k, v in cfg.to_dict().items() if k != "extra"}))


def _adapter_weights(run: Path, step: int) -> dict:
    return load_file(run / "checkpoints" / f"step-{step:06d}" / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory, tiny_model):  # noqa: F811
    tmp = tmp_path_factory.mktemp("loop")
    run = run_discovery(_config(tmp, tiny_model, tmp / "run", steps=2), echo=lambda _: None)
    return run


def test_run_folder_contract(two_step_run):
    run = two_step_run
    for name in ("config.yml", "summary.json", "history.jsonl", "steps.jsonl", "archive.json",
                 "best_kernel.py", "reference.json"):  # fmt: skip
        assert (run / name).is_file(), name
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps_completed"] == 2 and summary["task"] == "vectoradd" and summary["device"] == "cpu"
    assert summary["best_runtime_us"] > 0 and summary["best_speedup"] > 0
    history = read_jsonl(run / "history.jsonl")
    assert [h["step"] for h in history].count(1) == 8 and [h["step"] for h in history].count(2) == 8
    for h in history:
        assert (run / h["candidate"]).is_file() if h["candidate"] else h["status"] == "gated"
        if h["step"] > 0:
            assert (run / h["reply"]).read_text() in REPLIES
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["steps"] == 2 and config["policy"] == "scripted"


def test_every_kind_of_failure_is_recorded_and_the_run_goes_on(two_step_run):
    history = read_jsonl(two_step_run / "history.jsonl")
    by_hash = {}
    for h in history:
        if h["step"] > 0:
            by_hash.setdefault(h["status"], []).append(h)
    assert all(h["reward"] == 0 for h in by_hash["gated"])
    assert "code block" in by_hash["gated"][0]["message"]
    crashes = by_hash["crash"]
    assert any("boom" in h["message"] for h in crashes)
    assert len({h["code_hash"] for h in crashes}) == 2  # the raising kernel and the judge killer
    assert all(h["reward"] == 0 for h in crashes)
    ok = by_hash["ok"]
    assert ok and all(h["reward"] > 0 for h in ok)


def test_rewards_reached_the_trainer_and_the_adapter_changed(two_step_run):
    steps = read_jsonl(two_step_run / "steps.jsonl")
    trained = [s for s in steps if s["step"] > 0]
    assert all(s["groups_trained"] >= 1 and s["loss"] is not None and s["mean_beta"] > 0 for s in trained)
    one, two = _adapter_weights(two_step_run, 1), _adapter_weights(two_step_run, 2)
    assert any(not (one[k] == two[k]).all() for k in one)


def test_archive_holds_the_correct_new_kernel_as_a_child(two_step_run):
    archive = json.loads((two_step_run / "archive.json").read_text())
    states = archive["states"]
    states = states.values() if isinstance(states, dict) else states
    children = [s for s in states if s["parent"] is not None]
    assert children and all(s["status"] == "ok" for s in children)
    assert archive["total_expansions"] == 16


@pytest.mark.slow
def test_every_step_fills_every_group_from_the_first(tmp_path, tiny_model):  # noqa: F811
    """groups x group_size rollouts in every step, step 1 included: one root per group (the
    starting submission and the empty root, in turn), so lineage blocking never leaves a group
    without a start state."""
    cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=3, train=False, groups=4, group_size=2)
    run = run_discovery(cfg, echo=lambda _: None)
    history = [h for h in read_jsonl(run / "history.jsonl") if h["step"] > 0]
    for step in (1, 2, 3):
        cells = sorted((h["group"], h["sample"]) for h in history if h["step"] == step)
        assert cells == [(g, i) for g in range(4) for i in range(2)], step
    steps = read_jsonl(run / "steps.jsonl")
    assert [s["n_candidates"] for s in steps if s["step"] > 0] == [8, 8, 8]


def test_evaluator_exceptions_become_crash_records(tmp_path, tiny_model, monkeypatch):  # noqa: F811
    import kerneldisc.evaluate as evaluate_pkg

    real = evaluate_pkg.evaluate
    calls = {"n": 0}

    def flaky(task, candidate, cfg=None, reference=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the first call judges the starting submission
            raise OSError("worker pipe closed")
        return real(task, candidate, cfg, reference=reference)

    monkeypatch.setattr(evaluate_pkg, "evaluate", flaky)
    script_cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=1, train=False, group_size=2, groups=1)
    run = run_discovery(script_cfg, echo=lambda _: None)
    history = [h for h in read_jsonl(run / "history.jsonl") if h["step"] == 1]
    assert any(h["status"] == "crash" and "worker pipe closed" in h["message"] for h in history)
    assert json.loads((run / "summary.json").read_text())["steps_completed"] == 1


@pytest.mark.slow
def test_kill_during_step_two_then_resume_loses_and_duplicates_nothing(tmp_path, tiny_model):  # noqa: F811
    out = tmp_path / "run"
    cfg = _config(tmp_path, tiny_model, out, steps=2, train=True)
    _write_config_file(tmp_path / "cfg.yml", cfg)
    cmd = [sys.executable, "-m", "kerneldisc", "discover", "--config", str(tmp_path / "cfg.yml")]
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    latest = out / "checkpoints" / "LATEST"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if latest.is_file() and latest.read_text().strip() == "step-000001":
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    time.sleep(1.0)  # well inside step 2: sampling and evaluating have begun
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = [h for h in read_jsonl(out / "history.jsonl") if h["step"] <= 1]
    adapter_at_kill = _adapter_weights(out, 1)

    resumed = subprocess.run(
        [sys.executable, "-m", "kerneldisc", "discover", "--resume", str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after step 1" in resumed.stdout
    history = read_jsonl(out / "history.jsonl")
    assert [h for h in history if h["step"] <= 1] == at_kill
    assert [h["step"] for h in history].count(2) == 8
    assert [s["step"] for s in read_jsonl(out / "steps.jsonl")] == [1, 2]
    assert all((adapter_at_kill[k] == _adapter_weights(out, 1)[k]).all() for k in adapter_at_kill)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_completed"] == 2
    # The same replies in the same order as an uninterrupted run: the scripted policy's position
    # came back from the checkpoint.
    assert [h["code_hash"] for h in history if h["step"] == 2] == [
        h["code_hash"] for h in history if h["step"] == 1
    ]


@pytest.mark.slow
def test_ctrl_c_stops_at_the_last_finished_step_and_says_how_to_resume(tmp_path, tiny_model):  # noqa: F811
    out = tmp_path / "run"
    cfg = _config(tmp_path, tiny_model, out, steps=1, train=False)
    _write_config_file(tmp_path / "cfg.yml", cfg)
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = [sys.executable, "-m", "kerneldisc", "discover", "--config", str(tmp_path / "cfg.yml")]
    # A shell that starts a job in the background (as CI runners do) leaves SIGINT ignored, and an
    # ignored signal stays ignored across exec; give the run a terminal's Ctrl-C disposition.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    latest = out / "checkpoints" / "LATEST"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not latest.is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert f"kerneldisc discover --resume {out}" in err
    assert "Traceback" not in err
    assert json.loads((out / "summary.json").read_text())["steps_completed"] == 0
    resumed = subprocess.run(
        [sys.executable, "-m", "kerneldisc", "discover", "--resume", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["steps_completed"] == 1


def test_a_reference_timed_by_an_older_evaluator_is_timed_again(tmp_path):
    """A run folder from before the evaluator's second design holds a wall-clock reference: its
    rewards must not be compared with CPU-time measurements, so a resume times it again."""
    from kerneldisc.evaluate import EvalConfig
    from kerneldisc.run_context import _reference
    from kerneldisc.task import load_task

    class Folder:
        saved = None

        def load_reference(self):
            return {"task": "add", "device": "cpu", "runtime_us": 5.0, "benchmarks": [
                {"spec": {"size": 4096, "seed": 3}, "runtime": {"mean_us": 5.0, "std_us": 0.1, "stderr_us": 0.05,
                 "min_us": 4.9, "median_us": 5.0, "max_us": 5.2, "repeats": 3}}]}  # fmt: skip

        def save_reference(self, data):
            self.saved = data

    said = []
    folder = Folder()
    task = load_task(REPO / "tests" / "candidates" / "add_task")
    reference = _reference(folder, task, EvalConfig(device="cpu", timeout_s=60), said.append)
    assert any("timed by an older evaluator" in line for line in said)
    assert reference.method == "cpu-time-3" and folder.saved["method"] == "cpu-time-3"
