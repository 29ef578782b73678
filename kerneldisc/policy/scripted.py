"""A policy that replays fixed replies: for tests, audits and replaying a set of candidates
through the search.

The script is a YAML (or JSON) list of reply texts, used in order and cycled. With a trainer,
each reply is tokenised with the trainer's tokenizer and scored under the current adapter, so the
replies can be trained on as if the model had sampled them (the importance ratio starts at 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kerneldisc.errors import ConfigError
from kerneldisc.policy.base import Completion, Prompt


class ScriptedPolicy:
    def __init__(self, script: str | Path | None, trainer=None) -> None:
        if not script:
            raise ConfigError("the scripted policy needs a script file (config key 'script')")
        path = Path(script)
        if not path.is_file():
            raise ConfigError(f"scripted policy: script file {path} not found")
        try:
            replies = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(replies, list) or not replies or not all(isinstance(r, str) for r in replies):
            raise ConfigError(f"{path}: expected a non-empty list of reply texts")
        self.replies: list[str] = replies
        self.trainer = trainer
        self.position = 0

    def sample(self, prompts: list[Prompt], k: int, stop: list[str] | None = None) -> list[list[Completion]]:
        """The script's replies in turn, as written (they are whole replies: no opening, no stop)."""
        out = []
        for prompt in prompts:
            texts = [self.replies[(self.position + i) % len(self.replies)] for i in range(k)]
            self.position += k
            out.append([self._completion(prompt, t) for t in texts])
        return out

    def _completion(self, prompt: Prompt, text: str) -> Completion:
        if self.trainer is None:
            return Completion(text=text)
        from kerneldisc.policy.hf import prompt_token_ids

        tok = self.trainer.tokenizer
        ids = list(tok(text, add_special_tokens=False).input_ids)
        if tok.eos_token_id is not None:
            ids.append(tok.eos_token_id)
        # Placeholder log-probs (the trainer checks lengths), then the real ones under the adapter.
        completion = Completion(
            text=text,
            prompt_token_ids=prompt_token_ids(tok, prompt),
            token_ids=ids,
            logprobs=[0.0] * len(ids),
        )
        completion.logprobs = self.trainer.logprobs([completion])[0]
        return completion

    def load_adapter(self, path: str | Path) -> None:
        """The trainer's model is scored directly; nothing to load."""

    def release(self) -> None:
        """Holds no accelerator memory of its own."""

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
