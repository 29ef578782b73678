"""The run folder's crash safety: a step is real only once its checkpoint is committed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kerneldisc.errors import ConfigError
from kerneldisc.run_folder import RunFolder, read_jsonl

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _commit(run: RunFolder, step: int, n_lines: int, adapter_text: str | None = None):
    archive = {"step": step}
    save = None
    if adapter_text is not None:

        def save(path):
            path.mkdir()
            (path / "weights.txt").write_text(adapter_text)

    history = [{"step": step, "sample": i} for i in range(n_lines)]
    return run.commit_step(
        step,
        archive,
        history,
        {"step": step},
        {"steps_completed": step},
        save_adapter=save,
        best_code=f"# {step}",
    )


def test_commit_publishes_history_summary_archive_and_adapter(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"task": "x"})
    _commit(run, 0, 1)
    _commit(run, 1, 3, adapter_text="one")
    assert [r["step"] for r in read_jsonl(run.root / "history.jsonl")] == [0, 1, 1, 1]
    assert [r["step"] for r in read_jsonl(run.root / "steps.jsonl")] == [0, 1]
    assert json.loads((run.root / "summary.json").read_text())["steps_completed"] == 1
    assert json.loads((run.root / "archive.json").read_text()) == {"step": 1}
    assert (run.root / "adapter" / "weights.txt").read_text() == "one"
    assert (run.root / "best_kernel.py").read_text() == "# 1"
    assert run.latest().step == 1


def test_publish_after_unfinished_step_drops_its_lines_and_archive(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"task": "x"})
    _commit(run, 0, 2)
    _commit(run, 1, 2, adapter_text="one")
    # An unfinished step 2 appended lines and rewrote the archive, then the process died.
    with open(run.root / "history.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 2, "sample": 0}) + "\n")
    (run.root / "archive.json").write_text(json.dumps({"step": 2}))
    run.publish(run.latest())
    assert [r["step"] for r in read_jsonl(run.root / "history.jsonl")] == [0, 0, 1, 1]
    assert json.loads((run.root / "archive.json").read_text()) == {"step": 1}


def test_rerun_step_after_crash_does_not_duplicate(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"task": "x"})
    _commit(run, 0, 1)
    _commit(run, 1, 2)
    _commit(run, 2, 2)
    # A crash between the checkpoint rename and LATEST: step 2 is redone and committed again.
    (run.checkpoints / "LATEST").write_text("step-000001\n")
    run.publish(run.latest())
    _commit(run, 2, 2)
    assert [r["step"] for r in read_jsonl(run.root / "history.jsonl")] == [0, 1, 1, 2, 2]


def test_old_checkpoints_are_pruned_but_adapter_is_kept(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"task": "x"})
    for step in range(5):
        _commit(run, step, 1, adapter_text=str(step))
    kept = sorted(p.name for p in run.checkpoints.glob("step-*"))
    assert kept == ["step-000003", "step-000004"]
    assert (run.root / "adapter" / "weights.txt").read_text() == "4"
    assert os.path.islink(run.root / "adapter")


def test_create_refuses_an_existing_run(tmp_path):
    RunFolder.create(tmp_path / "run", {"task": "x"})
    with pytest.raises(ConfigError, match="--resume"):
        RunFolder.create(tmp_path / "run", {"task": "x"})


def test_open_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="not a kerneldisc run folder"):
        RunFolder.open(tmp_path)


def test_candidates_are_content_addressed(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"task": "x"})
    a = run.write_candidate("print(1)\n")
    b = run.write_candidate("print(1)\n")
    c = run.write_candidate("print(2)\n")
    assert a == b and a != c
    assert (run.root / a[1]).read_text() == "print(1)\n"


def test_a_run_stopped_between_its_checkpoint_and_publishing_is_recovered_on_open(tmp_path):
    """A Ctrl-C after checkpoints/LATEST names step 1 but before the top-level views were made
    (here: step 1's views undone by hand): the next command that opens the folder republishes."""
    run = RunFolder.create(tmp_path / "run", {"task": "x"})
    _commit(run, 0, 1)
    _commit(run, 1, 2)
    (run.root / "summary.json").unlink()
    (run.checkpoints / "PUBLISHED").write_text("step-000000\n")
    lines = read_jsonl(run.root / "history.jsonl")
    (run.root / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines[:1]))
    RunFolder.open(run.root)
    assert json.loads((run.root / "summary.json").read_text())["steps_completed"] == 1
    assert [r["step"] for r in read_jsonl(run.root / "history.jsonl")] == [0, 1, 1]
    assert (run.checkpoints / "PUBLISHED").read_text().strip() == "step-000001"


def test_a_run_folder_written_before_the_published_marker_opens_as_it_is(tmp_path):
    run = RunFolder.create(tmp_path / "run", {"task": "x"})
    _commit(run, 0, 2)
    (run.checkpoints / "PUBLISHED").unlink()  # folders made by earlier versions have none
    before = (run.root / "history.jsonl").read_text()
    RunFolder.open(run.root)
    assert (run.root / "history.jsonl").read_text() == before
    assert (run.checkpoints / "PUBLISHED").read_text().strip() == "step-000000"


@pytest.mark.slow
def test_a_run_folder_written_before_the_rollout_refactor_resumes_and_reports(tmp_path, monkeypatch):
    """tests/fixtures/run-2026-11: two steps of a frozen scripted run on vectoradd, written by
    the code of November 2026 (before one Rollout type, the run context and the PUBLISHED
    marker). Today's code continues it to step 3 and reports it."""
    from kerneldisc.loop import config_for_resume, run_discovery
    from kerneldisc.report import build_report
    from kerneldisc.rollout import Rollout

    monkeypatch.setenv("KERNELDISC_CACHE", str(tmp_path / "cache"))
    shutil.copytree(FIXTURES / "run-2026-11", tmp_path, dirs_exist_ok=True)
    run_dir = tmp_path / "run"
    config = run_dir / "config.yml"  # as a user who moved the folder would: point at the script
    config.write_text(config.read_text().replace("/tmp/replies.yml", str(tmp_path / "replies.yml")))
    old_history = read_jsonl(run_dir / "history.jsonl")
    assert not (run_dir / "checkpoints" / "PUBLISHED").exists()  # truly from before the marker

    run_discovery(config_for_resume(run_dir, {"steps": 3}), resume=run_dir, echo=lambda _: None)

    history = read_jsonl(run_dir / "history.jsonl")
    assert history[: len(old_history)] == old_history  # nothing rewritten, nothing duplicated
    assert [r["step"] for r in history[len(old_history) :]] == [3, 3, 3, 3]
    rollouts = [Rollout.from_record(r) for r in history]
    assert [r.status for r in rollouts[len(old_history) :]].count("gated") >= 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps_completed"] == 3
    states = {s["id"]: s for s in json.loads((run_dir / "archive.json").read_text())["states"]}
    # Every rollout that became a state is in the archive with its reward, old and new alike.
    became = [r for r in rollouts if r.state_id is not None]
    assert became and any(r.status == "ok" for r in rollouts[len(old_history) :])
    for rollout in became:
        assert states[rollout.state_id]["reward"] == pytest.approx(rollout.reward)
    report = build_report([run_dir], tmp_path / "report")
    assert "vectoradd" in (report / "report.md").read_text()
