"""Policies: where completions come from.

    policy = make_policy("hf", model=None, device="cpu", seed=0, temperature=1.0, max_new_tokens=512)
    completions = policy.sample(prompts, k)   # per prompt, k Completion objects

`hf` (transformers, CPU or GPU, trainable adapter), `vllm` (vLLM engine with LoRA swapped in after
each step, on a GPU or with vLLM's CPU build; optional extra), `openai` (any OpenAI-compatible
endpoint, frozen weights) and `scripted` (fixed replies from a file, in order: tests and replays).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kerneldisc.errors import ConfigError
from kerneldisc.policy.base import Completion, Policy, PolicyError, Prompt
from kerneldisc.policy.models import cache_root, resolve_model

KINDS = ("hf", "vllm", "openai", "scripted")  # the one list of policy names

# Options each kind takes beyond (model, device, seed, temperature, max_new_tokens).
_OPTIONS = {
    "hf": {"top_k", "top_p", "batch_size", "trainer", "cache_dir"},
    "vllm": {
        "max_lora_rank",
        "gpu_memory_utilization",
        "max_model_len",
        "cpu_kv_cache_gib",
        "log_stats",
        "cache_dir",
        "trainer",
    },
    "openai": {"base_url", "api_key", "api_key_env", "timeout_s"},
    "scripted": {"script", "trainer"},
}


def make_policy(
    kind: str,
    model: str | Path | None = None,
    device: str = "cpu",
    seed: int = 0,
    temperature: float = 1.0,
    max_new_tokens: int = 1024,
    **options: Any,
) -> Policy:
    """A policy of `kind`. `model` is resolved with `resolve_model` for hf and vllm, and is the
    endpoint's model name for openai. One call site serves every kind: options of other kinds, and
    options set to None, are ignored; an option no kind takes is an error."""
    if kind not in KINDS:
        raise ConfigError(f"policy must be one of {', '.join(KINDS)}, got {kind!r}")
    known = set().union(*_OPTIONS.values())
    unknown = sorted(name for name, value in options.items() if value is not None and name not in known)
    if unknown:
        raise ConfigError(f"no policy takes the option(s) {', '.join(unknown)}")
    options = {name: value for name, value in options.items() if value is not None and name in _OPTIONS[kind]}
    common = {"seed": seed, "temperature": temperature, "max_new_tokens": max_new_tokens}

    if kind == "scripted":
        from kerneldisc.policy.scripted import ScriptedPolicy

        return ScriptedPolicy(options.get("script"), trainer=options.get("trainer"))

    if kind == "openai":
        from kerneldisc.policy.openai import OpenAIPolicy

        return OpenAIPolicy(model=str(model) if model is not None else None, **common, **options)

    cache_dir = options.pop("cache_dir", None)
    if kind == "vllm":
        from kerneldisc.policy.vllm import VLLMPolicy, require_vllm

        require_vllm()  # before resolving (and perhaps converting) a model it could not use
        options.pop("trainer", None)  # vLLM holds its own weights; the trainer's reach it as adapters
        return VLLMPolicy(resolve_model(model, cache_dir), device=device, **common, **options)

    from kerneldisc.policy.hf import HFPolicy

    trainer = options.pop("trainer", None)
    model_dir = resolve_model(model, cache_dir)
    if trainer is not None and (
        trainer.model_dir.resolve() != model_dir.resolve() or trainer.cfg.device != device
    ):
        trainer = None  # different weights or device: sample from a copy of our own
    return HFPolicy(model_dir, device=device, trainer=trainer, **common, **options)


__all__ = [
    "KINDS",
    "Completion",
    "Policy",
    "PolicyError",
    "Prompt",
    "cache_root",
    "make_policy",
    "resolve_model",
]
