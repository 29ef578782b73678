"""Discovery settings: defaults < config file < flags, and clear errors for bad values."""

from __future__ import annotations

import pytest

from kerneldisc.config import load_config_file, make_config
from kerneldisc.errors import ConfigError
from kerneldisc.gpus import GpuRoles, parse_gpus


def test_flags_override_file_and_file_overrides_defaults(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("task: softmax\nsteps: 7\ngroups: 3\n")
    cfg = make_config(load_config_file(f), {"steps": 9, "groups": None})
    # lr left open: it follows the model's size once the model is known (config.concrete)
    assert (cfg.task, cfg.steps, cfg.groups, cfg.lora_rank, cfg.lr) == ("softmax", 9, 3, 32, None)
    assert make_config(load_config_file(f), {"lr": 2e-4}).lr == 2e-4


@pytest.mark.parametrize(
    "text, message",
    [
        ("task: x\nsteps: many\n", "'steps' must be a whole number"),
        ("task: x\nstep: 3\n", "unknown setting"),
        ("- a\n- b\n", "mapping"),
        ("task: [unclosed\n", "not valid YAML"),
        ("task: x\ntrain: maybe\n", "true or false"),
        ("task: x\nlog: mlflow\n", r"unknown tracker\(s\) mlflow \(allowed: tensorboard, wandb, or none\)"),
        ("task: x\nlog: {tensorboard: true}\n", "log must be a list of tensorboard or wandb"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path, text, message):
    f = tmp_path / "c.yml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        make_config(load_config_file(f), {})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"steps": 0}, "steps must be at least 1"),
        ({"policy": "magic"}, "policy must be one of"),
        ({"policy": "openai"}, "--no-train"),
        ({"device": "tpu"}, "device must be"),
        ({"eval_memory_mb": 512}, "eval_memory_mb must be at least 1024"),
        ({"log": ["tensorboard", "mlflow"]}, "unknown tracker"),
    ],
)
def test_bad_values_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config({"task": "vectoradd"}, overrides)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "nope.yml")


def test_gpu_roles_split_and_explicit():
    assert parse_gpus(None, 1) == GpuRoles((0,), (0,), (0,))
    assert parse_gpus("0,1", 4) == GpuRoles((0,), (0,), (1,))
    assert parse_gpus(None, 4) == GpuRoles((0,), (1,), (2, 3))
    roles = parse_gpus("sample=0;train=0;eval=1,2", 3)
    assert roles == GpuRoles((0,), (0,), (1, 2)) and not roles.eval_shares_gpu
    assert parse_gpus("0", 1).eval_shares_gpu
    assert parse_gpus(None, 0) is None


@pytest.mark.parametrize(
    "text, available, message",
    [
        ("0,5", 2, "GPU 5 does not exist"),
        ("sample=0;eval=1", 2, "no GPU given for train"),
        ("sample=0;train=0;judge=1", 2, "unknown role"),
        ("a,b", 2, "expected GPU numbers"),
        ("0", 0, "no CUDA GPU"),
    ],
)
def test_bad_gpu_lists_are_refused(text, available, message):
    with pytest.raises(ConfigError, match=message):
        parse_gpus(text, available)


@pytest.mark.parametrize(
    "given, expected",
    [
        ([], []),
        ("tensorboard", ["tensorboard"]),
        ("wandb, tensorboard", ["wandb", "tensorboard"]),
        (["tensorboard", "TensorBoard", "wandb"], ["tensorboard", "wandb"]),
        ("none", []),
    ],
)
def test_log_takes_a_list_or_commas_each_tracker_once(tmp_path, given, expected):
    assert make_config({"task": "vectoradd", "log": given}).log == expected
    f = tmp_path / "c.yml"
    f.write_text(f"task: x\nlog: {given!r}\n" if isinstance(given, str) else f"task: x\nlog: {given}\n")
    assert make_config(load_config_file(f), {}).log == expected
