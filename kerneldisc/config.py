"""The discovery run's configuration: defaults, a YAML file, then flags — later wins.

Defaults follow TTT-Discover where the hardware allows (LoRA rank 32, adaptive entropic β, PUCT
c = 1, top-2 children, archive of 1000, KL coefficient 0 as in the public code). What depends on
the model (prompt style, temperature, learning rate, new tokens per reply) is left `None`/"auto"
here and made concrete by `kerneldisc.model_defaults` when the run starts. The sample budget
(steps × groups × group size) defaults to what a 2-core CPU finishes in minutes; the
published-scale recipe is in the README.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerneldisc.errors import ConfigError
from kerneldisc.evaluate.config import MIN_MEMORY_MB
from kerneldisc.policy import KINDS
from kerneldisc.prompts.compose import STYLES
from kerneldisc.rollout import REWARDS
from kerneldisc.yaml_file import read_yaml_mapping

POLICIES = KINDS
LOGGERS = ("tensorboard", "wandb")  # experiment trackers (tracking.py); each an optional extra


@dataclass
class DiscoverConfig:
    task: str = ""
    model: str | None = None  # None: the embedded SmolLM2-135M-Instruct
    policy: str = "hf"
    steps: int = 3
    groups: int = 2  # G: start states per step, one prompt each
    group_size: int = 4  # K: completions per prompt
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    gpus: str | None = None  # e.g. "sample=0,train=0,eval=1,2" or "0,1,2"
    out: str | None = None
    train: bool = True  # False: frozen weights (best-of-N with PUCT reuse)
    seed: int = 0
    # sampling (None / "auto": decided by the model, see model_defaults.py)
    temperature: float | None = None
    max_new_tokens: int | None = None  # a cap; each reply also fits the model's context
    prompt: str = "auto"  # auto | full | compact
    # learning
    lora_rank: int = 32
    lr: float | None = None
    kl_coef: float = 0.0
    token_budget: int = 8192
    beta: float | None = None  # None: adaptive (KL = ln 2)
    advantage: str = "entropic"  # entropic | mean (ablation)
    # search (paper defaults)
    puct_c: float = 1.0
    top_children: int = 2
    max_archive: int = 1000
    empty_root: bool = True  # roots alternate the starting submission and the skeleton
    # evaluation
    reward: str = "speedup"  # speedup | inverse_runtime (1000 / runtime_us)
    require_language: bool | None = None  # None: the task's require_language (default false)
    eval_timeout_s: float = 120.0
    eval_workers: int = 0  # 0: one per evaluation GPU, or 1 on the CPU
    eval_memory_mb: int | None = None  # the candidate's memory limit; None: the evaluator's default
    # Evaluations on a Ray cluster (docs/cluster.md): an address as ray.init takes it ("auto",
    # "ray://host:10001", "host:port") or "local" for a Ray started on the spot; None: no Ray.
    ray: str | None = None
    target_us: float | None = None  # the runtime the prompt asks for; default half the best so far
    # openai policy
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    # scripted policy (tests, replays): a file of completions
    script: str | None = None
    # experiment tracking (tracking.py): any of LOGGERS; watching a run never changes its result
    log: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> DiscoverConfig:
        if not self.task:
            raise ConfigError("no task given (a reference task name, a task folder or a KernelBench file)")
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.reward not in REWARDS:
            raise ConfigError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        if self.advantage not in ("entropic", "mean"):
            raise ConfigError(f"advantage must be 'entropic' or 'mean', got {self.advantage!r}")
        for name in ("steps", "groups", "group_size", "lora_rank", "max_new_tokens", "top_children"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.prompt not in ("auto", *STYLES):
            raise ConfigError(f"prompt must be auto, {' or '.join(STYLES)}, got {self.prompt!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.kl_coef < 0:
            raise ConfigError(f"kl_coef must be 0 or more, got {self.kl_coef}")
        if self.max_archive < 2:
            raise ConfigError(f"max_archive must be at least 2, got {self.max_archive}")
        if self.eval_workers < 0:
            raise ConfigError(f"eval_workers must be 0 (automatic) or more, got {self.eval_workers}")
        if self.ray is not None and (not isinstance(self.ray, str) or not self.ray.strip()):
            raise ConfigError(
                f"ray must be an address (auto, ray://host:10001, host:port) or local, got {self.ray!r}"
            )
        if self.eval_timeout_s <= 0:
            raise ConfigError(f"eval_timeout_s must be positive, got {self.eval_timeout_s}")
        if self.eval_memory_mb is not None and int(self.eval_memory_mb) < MIN_MEMORY_MB:
            raise ConfigError(
                f"eval_memory_mb must be at least {MIN_MEMORY_MB} (MB), got {self.eval_memory_mb}"
            )
        if self.temperature is not None and self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        if self.policy == "openai" and self.train:
            raise ConfigError("the openai policy has frozen weights: add --no-train")
        if self.policy == "scripted" and not (self.script and Path(self.script).is_file()):
            raise ConfigError(
                f"the scripted policy needs a script file (config key 'script'); got {self.script!r}"
            )
        self.log = parse_log(self.log)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def concrete(self, model_dir: Path | None, device: str) -> DiscoverConfig:
        """A copy with every model-dependent setting decided (docs/models.md)."""
        from kerneldisc import model_defaults as md

        style = self.prompt if self.prompt != "auto" else md.prompt_style(self.model)
        return dataclasses.replace(
            self,
            prompt=style,
            temperature=self.temperature if self.temperature is not None else md.temperature(self.model),
            lr=self.lr if self.lr is not None else md.learning_rate(md.parameters(model_dir)),
            max_new_tokens=self.max_new_tokens or md.new_tokens_cap(device, style),
        )


FIELDS = {f.name for f in dataclasses.fields(DiscoverConfig)}


def parse_log(value: Any) -> list[str]:
    """The trackers asked for: a list or a comma-separated string (a YAML file or repeated
    `--log` flags may give either), in order, each once; "none" alone asks for none (a resume
    that stops tracking)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"log must be a list of {' or '.join(LOGGERS)}, got {value!r}")
    names = [i.strip().lower() for i in items if i.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise ConfigError(
            f"log: unknown tracker(s) {', '.join(unknown)} (allowed: {', '.join(LOGGERS)}, or none)"
        )
    return list(dict.fromkeys(names))


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    data = read_yaml_mapping(p, "config file", "a mapping of settings")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ConfigError(
            f"{p}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})"
        )
    return data


def make_config(
    file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> DiscoverConfig:
    """Defaults < config file < flags; `None` in overrides means "flag not given"."""
    values: dict[str, Any] = {}
    values.update(file_values or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
    try:
        cfg = DiscoverConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return _coerce(cfg).validate()


def _coerce(cfg: DiscoverConfig) -> DiscoverConfig:
    """YAML may give strings where numbers are meant; say which key is wrong."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or f.name == "extra":
            continue
        kind = {"int": int, "float": float, "bool": bool}.get(str(f.type).replace(" | None", ""))
        if kind is None:
            continue
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"setting '{f.name}' must be true or false, got {value!r}")
        try:
            setattr(cfg, f.name, kind(value))
        except (TypeError, ValueError):
            what = "whole number" if kind is int else "number"
            raise ConfigError(f"setting '{f.name}' must be a {what}, got {value!r}") from None
    return cfg
