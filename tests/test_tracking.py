"""Experiment tracking end to end: short scripted discoveries with `--log tensorboard` and
`--log wandb` (offline), read back with each tool's own reader and compared with steps.jsonl;
resumes that show every step exactly once; a missing package refused before anything is written;
a failing tracker that never stops the run."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml
from test_models import embedded_model, tiny_model  # noqa: F401  (shared fixtures)

from kerneldisc.config import make_config
from kerneldisc.errors import ConfigError
from kerneldisc.loop import config_for_resume, run_discovery
from kerneldisc.run_folder import read_jsonl

REPO = Path(__file__).resolve().parent.parent
SUBMISSION = (REPO / "reference_kernels" / "vectoradd" / "submission.py").read_text()
FAST = SUBMISSION.replace("block = 1024", "block = 4096")
REPLIES = [f"Here is a faster kernel.\n```python\n{FAST}```\n", "I am not sure what a kernel is."]

# Each tracked number and the step record it comes from (fractions: a count over n_candidates).
SCALARS = {
    "best/runtime_us": "best_runtime_us", "best/speedup": "best_speedup", "reward/mean": "mean_reward",
    "reward/max": "max_reward", "fraction/correct": "correct_fraction", "learn/beta": "mean_beta",
    "learn/loss": "loss", "learn/kl": "kl", "learn/ratio": "ratio", "learn/groups_trained": "groups_trained",
    "tokens/sampled": "tokens_sampled", "tokens/trained": "tokens_trained",
    "seconds/sampling": "seconds_sampling", "seconds/evaluating": "seconds_evaluating",
    "seconds/training": "seconds_training", "seconds/eval_queue_wait": "seconds_eval_queue_wait",
    "seconds/eval_busy": "seconds_eval_busy", "evaluators/alive": "evaluators_alive",
}  # fmt: skip
FRACTIONS = {"fraction/gated": "n_gated", "fraction/truncated": "n_truncated"}


def _config(tmp_path: Path, model: Path, out: Path, steps: int, **kw):
    script = tmp_path / "replies.yml"
    script.write_text(yaml.safe_dump(REPLIES))
    values = dict(
        task="vectoradd", model=str(model), policy="scripted", script=str(script), steps=steps, groups=2,
        group_size=2, device="cpu", out=str(out), lr=5e-3, lora_rank=4, eval_timeout_s=60, max_new_tokens=64,
    )  # fmt: skip
    values.update(kw)
    return make_config(values)


def _resume(run: Path, steps: int, echo=lambda _: None, **overrides) -> Path:
    cfg = config_for_resume(run, {"steps": steps, **overrides})
    return run_discovery(cfg, resume=run, echo=echo)


def _expected(record: dict) -> dict[str, float]:
    """What a step record says each tracked number is (absent: a number the step does not have)."""
    values = {tag: record[key] for tag, key in SCALARS.items() if record.get(key) is not None}
    values.update({tag: record[key] / record["n_candidates"] for tag, key in FRACTIONS.items()})
    return values


def _steps(run: Path) -> list[dict]:
    return [r for r in read_jsonl(run / "steps.jsonl") if r["step"] > 0]


# --- TensorBoard --------------------------------------------------------------------------------


def _events(folder: Path):
    """The folder as TensorBoard's own reader sees it (earlier events after a purge step dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _scalars_by_step(events) -> dict[int, dict[str, list[float]]]:
    found: dict[int, dict[str, list[float]]] = {}
    for tag in events.Tags()["scalars"]:
        for event in events.Scalars(tag):
            found.setdefault(event.step, {}).setdefault(tag, []).append(event.value)
    return found


def _assert_tensorboard_matches(run: Path) -> None:
    """Every step of steps.jsonl once, with its values; nothing else."""
    events = _events(run / "tensorboard")
    by_step = _scalars_by_step(events)
    records = _steps(run)
    assert sorted(by_step) == [r["step"] for r in records]
    for record in records:
        expected = _expected(record)
        assert set(by_step[record["step"]]) == set(expected), record["step"]
        for tag, value in expected.items():
            assert by_step[record["step"]][tag] == [pytest.approx(value, rel=1e-6, abs=1e-9)], (
                record["step"],
                tag,
            )
    histograms = events.Histograms("reward/distribution")
    assert [h.step for h in histograms] == [r["step"] for r in records]
    for h, record in zip(histograms, records, strict=True):
        assert h.histogram_value.num == len(record["rewards"])
        assert h.histogram_value.max == pytest.approx(max(record["rewards"]))


def _texts(events, tag: str) -> dict[int, str]:
    return {e.step: e.tensor_proto.string_val[0].decode() for e in events.Tensors(f"{tag}/text_summary")}


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory, tiny_model):  # noqa: F811
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    tmp = tmp_path_factory.mktemp("tb")
    said: list[str] = []
    run = run_discovery(_config(tmp, tiny_model, tmp / "run", steps=2, log=["tensorboard"]), echo=said.append)
    return run, said


def test_tensorboard_events_hold_every_step_with_the_values_of_steps_jsonl(tensorboard_run):
    run, said = tensorboard_run
    records = _steps(run)
    assert [r["step"] for r in records] == [1, 2]
    # The run trained: the learning numbers are there to compare, not skipped.
    assert all(r["loss"] is not None and r["ratio"] is not None and r["tokens_trained"] > 0 for r in records)
    assert all(r["tokens_sampled"] > 0 and r["mean_reward"] > 0 for r in records)
    _assert_tensorboard_matches(run)
    assert not any(line.startswith("warning") for line in said)


def test_tensorboard_shows_the_config_once_and_the_best_kernel_when_it_improves(tensorboard_run):
    run, _ = tensorboard_run
    events = _events(run / "tensorboard")
    config = _texts(events, "config")
    assert list(config) == [0] and "task: vectoradd" in config[0]
    kernels = _texts(events, "best_kernel")
    # The starting submission at step 0, then the faster kernel found in step 1; step 2 found nothing better.
    assert sorted(kernels) == [0, 1]
    assert "block = 1024" in kernels[0] and "block = 4096" in kernels[1]
    assert (run / "best_kernel.py").read_text().strip().splitlines()[0] in kernels[1]
    state = json.loads((run / "tracking.json").read_text())
    assert state["tensorboard"]["step"] == 2


def test_a_resume_after_a_step_logged_but_not_recorded_shows_each_step_once(tmp_path, tiny_model):  # noqa: F811
    """Killed after step 1 was logged but before tracking.json said so: the resumed run logs step 1
    again, and TensorBoard's reader keeps only the second copy."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=1, log=["tensorboard"], train=False)
    run = run_discovery(cfg, echo=lambda _: None)
    state = json.loads((run / "tracking.json").read_text())
    state["tensorboard"] = {"step": 0, "best_kernel": None}
    (run / "tracking.json").write_text(json.dumps(state))
    assert len(_events(run / "tensorboard").Scalars("best/runtime_us")) == 1

    _resume(run, steps=2)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one folder, two sessions
    _assert_tensorboard_matches(run)
    assert sorted(_texts(_events(run / "tensorboard"), "best_kernel")) == [0, 1]


def test_a_run_stopped_between_a_commit_and_its_log_shows_that_step_after_resume(
    tmp_path,
    tiny_model,  # noqa: F811
    monkeypatch,
):
    """A Ctrl-C (or SIGTERM) just after step 1 became durable, before any tracker saw it: the
    resumed run shows step 1 from steps.jsonl, then step 2, each once."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from kerneldisc.run_context import Interrupted
    from kerneldisc.tracking import Trackers

    def stopped(self, record, best_code):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Trackers, "log_step", stopped)
        cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=2, log=["tensorboard"], train=False)
        with pytest.raises(Interrupted):
            run_discovery(cfg, echo=lambda _: None)
    run = tmp_path / "run"
    assert [r["step"] for r in _steps(run)] == [1]
    assert _events(run / "tensorboard").Tags()["scalars"] == []  # step 1 never reached the tracker

    _resume(run, steps=2)
    _assert_tensorboard_matches(run)


def test_tracking_asked_for_on_resume_catches_up_with_the_committed_steps(tmp_path, tiny_model):  # noqa: F811
    """A run started without --log and resumed with it: steps before the resume are shown too
    (from steps.jsonl), and the setting is recorded for later resumes."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    run = run_discovery(
        _config(tmp_path, tiny_model, tmp_path / "run", steps=1, train=False), echo=lambda _: None
    )
    assert not (run / "tensorboard").exists() and not (run / "tracking.json").exists()
    _resume(run, steps=2, log=["tensorboard"])
    _assert_tensorboard_matches(run)
    assert yaml.safe_load((run / "config.yml").read_text())["log"] == ["tensorboard"]
    # The best kernel as of the last caught-up step, then at each improvement.
    assert 1 in _texts(_events(run / "tensorboard"), "best_kernel")


def test_a_run_folder_from_before_tracking_is_caught_up_whole(tmp_path):
    """tests/fixtures/run-2026-11 was written before step records kept mean/max reward or token
    counts: asking for TensorBoard on it shows both its steps, the mean and max from the rewards,
    and leaves out what the records do not hold (no loss, no ratio, no token counts)."""
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from kerneldisc.run_folder import RunFolder
    from kerneldisc.tracking import open_trackers

    shutil.copytree(REPO / "tests" / "fixtures" / "run-2026-11" / "run", tmp_path / "run")
    run = RunFolder.open(tmp_path / "run")
    open_trackers(make_config({"task": "vectoradd", "log": ["tensorboard"]}), run, echo=print).close()
    by_step = _scalars_by_step(_events(tmp_path / "run" / "tensorboard"))
    records = _steps(tmp_path / "run")
    assert sorted(by_step) == [1, 2]
    for record in records:
        row = by_step[record["step"]]
        assert row["reward/mean"] == [pytest.approx(sum(record["rewards"]) / len(record["rewards"]))]
        assert row["reward/max"] == [pytest.approx(max(record["rewards"]))]
        assert row["fraction/gated"] == [pytest.approx(record["n_gated"] / record["n_candidates"])]
        assert not {"learn/loss", "learn/ratio", "tokens/sampled", "fraction/truncated"} & set(row)
    assert json.loads((tmp_path / "run" / "tracking.json").read_text())["tensorboard"]["step"] == 2


def test_a_failing_tracker_warns_once_and_the_run_goes_on(tmp_path, tiny_model, monkeypatch):  # noqa: F811
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from kerneldisc import tracking

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tracking.TensorBoardTracker, "log", full_disk)
    said: list[str] = []
    cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=2, log=["tensorboard"], train=False)
    run = run_discovery(cfg, echo=said.append)
    assert [r["step"] for r in _steps(run)] == [1, 2]
    warnings = [line for line in said if "tensorboard" in line and "warning" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], said
    # tracking.json still says what the tracker holds (the step-0 config only): a resume catches up.
    assert json.loads((run / "tracking.json").read_text())["tensorboard"]["step"] == 0


def test_a_tracker_that_cannot_start_warns_once_and_the_others_go_on(tmp_path, tiny_model, monkeypatch):  # noqa: F811
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    from kerneldisc import tracking

    def unreachable(self, *args, **kwargs):
        raise ConnectionError("cannot reach api.wandb.ai")

    monkeypatch.setattr(tracking.WandbTracker, "__init__", unreachable)
    said: list[str] = []
    cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=1, log=["wandb", "tensorboard"], train=False)
    run = run_discovery(cfg, echo=said.append)
    warnings = [line for line in said if line.startswith("warning")]
    assert len(warnings) == 1 and "wandb could not start" in warnings[0] and "api.wandb.ai" in warnings[0]
    _assert_tensorboard_matches(run)
    assert "wandb" not in json.loads((run / "tracking.json").read_text())


# --- Weights & Biases, offline -----------------------------------------------------------------


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    """W&B with nothing reachable: offline mode, and its caches and settings kept in tmp_path."""
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    home = tmp_path / "home"
    home.mkdir()
    for name, value in {
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true",
        "WANDB_CONFIG_DIR": str(home / "config"), "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"), "NETRC": str(home / "netrc"), "HOME": str(home),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    return home


def _wandb_records(path: Path):
    """The records of a W&B transaction log (`run-<id>.wandb`), decoded with wandb's own Record
    type. wandb 0.31 keeps its reader inside its Go core, so the framing (LevelDB's log format:
    32 KiB blocks, each record a 7-byte header of CRC-32, length and kind) is read here, every
    checksum checked."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0), path
    block, position, parts = 32768, 7, []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0 and length == 0:
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum, (path, position)
        position += 7 + length
        parts.append(chunk)
        if kind in (1, 4):  # a whole record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def _wandb_runs(run: Path) -> list[dict]:
    """Each offline session of the run: its id, config and history rows keyed by step."""
    sessions = []
    for folder in sorted((run / "wandb").glob("offline-run-*")):
        (log,) = folder.glob("run-*.wandb")
        rows: dict[int, dict] = {}
        run_id, config = None, {}
        for record in _wandb_records(log):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_id = record.run.run_id
                config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "config":
                config.update({item.key: json.loads(item.value_json) for item in record.config.update})
            elif kind == "history":
                row = {
                    "/".join(item.nested_key) or item.key: json.loads(item.value_json)
                    for item in record.history.item
                }
                rows.setdefault(int(row["_step"]), {}).update(row)
        sessions.append({"folder": folder, "id": run_id, "config": config, "rows": rows})
    return sessions


def _assert_wandb_row(row: dict, record: dict) -> None:
    for tag, value in _expected(record).items():
        assert row[tag] == pytest.approx(value, rel=1e-9, abs=1e-9), (record["step"], tag)
    assert row["reward/distribution/_type"] == "histogram"
    assert sum(row["reward/distribution/values"]) == len(record["rewards"])


def test_wandb_offline_history_holds_every_step_with_the_values_of_steps_jsonl(
    tmp_path,
    tiny_model,  # noqa: F811
    wandb_offline,
):
    cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=2, log=["wandb"])
    run = run_discovery(cfg, echo=lambda _: None)
    (session,) = _wandb_runs(run)
    assert session["id"] == json.loads((run / "tracking.json").read_text())["wandb_id"]
    assert session["config"]["task"] == "vectoradd" and session["config"]["log"] == ["wandb"]
    records = _steps(run)
    assert all(r["loss"] is not None and r["ratio"] is not None for r in records)
    assert sorted(s for s in session["rows"] if s > 0) == [1, 2]
    for record in records:
        _assert_wandb_row(session["rows"][record["step"]], record)
    # The best kernel as a page: the starting submission at step 0, the faster one at step 1.
    assert "best_kernel/_type" in session["rows"][0] and "best_kernel/_type" in session["rows"][1]
    assert "best_kernel/_type" not in session["rows"][2]
    pages = sorted((session["folder"] / "files" / "media" / "html").glob("best_kernel_*.html"))
    assert any("block = 4096" in p.read_text() for p in pages)


def test_wandb_resume_continues_the_same_run_id(tmp_path, tiny_model, wandb_offline, monkeypatch):  # noqa: F811
    """The first session runs with no WANDB_MODE and no key (offline by default, said once); the
    resumed one continues the stored run id; together they hold every step once."""
    monkeypatch.delenv("WANDB_MODE")
    said: list[str] = []
    cfg = _config(tmp_path, tiny_model, tmp_path / "run", steps=1, log=["wandb"], train=False)
    run = run_discovery(cfg, echo=said.append)
    assert len([line for line in said if "logging offline" in line and "wandb sync" in line]) == 1, said
    run_id = json.loads((run / "tracking.json").read_text())["wandb_id"]

    monkeypatch.setenv("WANDB_MODE", "offline")
    _resume(run, steps=2)
    sessions = _wandb_runs(run)
    assert len(sessions) == 2 and {s["id"] for s in sessions} == {run_id}
    assert [s["config"]["steps"] for s in sessions] == [1, 2]  # the resumed config, allowed to differ
    logged = [step for s in sessions for step in s["rows"] if step > 0]
    assert sorted(logged) == [1, 2]
    for record in _steps(run):
        row = next(s["rows"][record["step"]] for s in sessions if record["step"] in s["rows"])
        _assert_wandb_row(row, record)


# --- asking for what is not there ---------------------------------------------------------------


@pytest.mark.parametrize("tracker", ["tensorboard", "wandb"])
def test_a_tracker_that_is_not_installed_is_one_line_naming_the_extra_and_writes_nothing(tmp_path, tracker):
    """The package hidden behind one that fails to import, as an absent one does."""
    hidden = tmp_path / "hidden" / tracker
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named '{tracker}'\")\n")
    out = tmp_path / "run"
    path = os.pathsep.join(p for p in (str(tmp_path / "hidden"), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=path)
    result = subprocess.run(
        [sys.executable, "-m", "kerneldisc", "discover", "vectoradd", "--log", tracker, "--out", str(out),
         "--device", "cpu"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"pip install 'kerneldisc[{tracker}]'" in lines[0], result.stderr
    assert not out.exists()


def test_the_library_refuses_a_missing_tracker_before_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    script = tmp_path / "replies.yml"
    script.write_text(yaml.safe_dump(REPLIES))
    cfg = make_config({"task": "vectoradd", "device": "cpu", "policy": "scripted", "train": False,
                       "script": str(script), "out": str(tmp_path / "run"), "log": "wandb"})  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        run_discovery(cfg, echo=lambda _: None)
    assert "kerneldisc[wandb]" in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()
