"""What every policy returns and what the trainer consumes.

A policy turns prompts into completions. Each completion carries the token ids it was sampled as
and the log-probability of each token under the distribution it was actually drawn from (`q`,
at the sampling temperature), so the trainer can form the importance ratio `exp(log pi - log q)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kerneldisc.errors import KerneldiscError

# A prompt is either chat messages ({"role": ..., "content": ...}, rendered with the model's chat
# template) or a raw string given to the model as it is.
Prompt = list[dict[str, str]] | str


class PolicyError(KerneldiscError):
    """A policy cannot sample: a backend is missing, an endpoint is down or answered nonsense."""


@dataclass
class Completion:
    """One sampled reply.

    `logprobs[i]` is log q(token_ids[i]) under the sampling distribution (temperature applied;
    truncated and renormalised when top-k/top-p is configured). `finish_reason` is "stop" (end of
    sequence sampled) or "length" (max_new_tokens reached). Policies that cannot see token ids
    (an OpenAI-compatible endpoint) leave `prompt_token_ids` and `token_ids` empty.
    """

    text: str
    prompt_token_ids: list[int] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"


def derived_seed(seed: int, index: int) -> int:
    """A seed for the `index`-th draw of a run seeded with `seed` (a step, a sampling call):
    reproducible from the two numbers alone, so nothing about generators has to be saved."""
    return (seed * 1_000_003 + index) % (2**31 - 1)


def reply_opening(prompt: Prompt) -> str:
    """What a prompt has already put in the model's mouth: the text of a final assistant message."""
    if isinstance(prompt, list) and prompt and prompt[-1].get("role") == "assistant":
        return str(prompt[-1].get("content", ""))
    return ""


class LocalSampler:
    """What the policies that run a model here (hf, vllm) share: where the weights are, the
    device, the sampling settings, and the adapter last loaded."""

    def __init__(
        self, model_dir: Path, device: str, seed: int, temperature: float, max_new_tokens: int
    ) -> None:
        from kerneldisc.errors import ConfigError

        if temperature <= 0:
            raise ConfigError(f"temperature must be positive for sampling, got {temperature}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.model_dir = Path(model_dir)
        self.device = device
        self.seed = seed
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.adapter_path: Path | None = None


class Policy(Protocol):
    """The sampling side of the loop; `hf`, `vllm`, `openai` and `scripted` implement it."""

    def sample(self, prompts: list[Prompt], k: int, stop: list[str] | None = None) -> list[list[Completion]]:
        """K completions for each prompt, in prompt order. A prompt whose last message is the
        assistant's is continued from it, and that opening is part of each completion's text
        (not of its tokens). A reply ends at the first of `stop` (included in the text)."""
        ...

    def load_adapter(self, path: str | Path) -> None:
        """Sample with the LoRA adapter in `path` from now on (a no-op for frozen policies)."""
        ...

    def release(self) -> None:
        """Free accelerator memory; the next `sample` loads again."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Sampling RNG state, so a resumed run draws what an uninterrupted one would."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
