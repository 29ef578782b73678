"""Sampling from any OpenAI-compatible endpoint, with frozen weights (search-only runs, best-of-N).

Standard library only. Chat messages go to /v1/chat/completions, raw strings to /v1/completions,
with `n=k` and log-probabilities requested. Servers that ignore `n` (several local ones do) are asked
again until k completions are collected. Token ids are not part of the OpenAI format, so completions
carry none: they can be searched with, not trained on.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kerneldisc.errors import ConfigError
from kerneldisc.policy.base import Completion, PolicyError, Prompt, reply_opening


class OpenAIPolicy:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        seed: int | None = 0,
        temperature: float = 1.0,
        max_new_tokens: int = 1024,
        timeout_s: float = 600.0,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ConfigError(
                "the openai policy needs an endpoint: set OPENAI_BASE_URL or base_url in a discover --config file"
            )
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model or os.environ.get("OPENAI_MODEL")
        if not self.model:
            raise ConfigError("the openai policy needs a model name: pass --model or set OPENAI_MODEL")
        self.api_key = api_key or os.environ.get(api_key_env) or ""
        self.seed = seed
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self._requests = 0  # advances the per-request seed, so repeated prompts differ

    def sample(self, prompts: list[Prompt], k: int, stop: list[str] | None = None) -> list[list[Completion]]:
        results = []
        for prompt in prompts:
            completions: list[Completion] = []
            while len(completions) < k:
                got = self._request(prompt, k - len(completions), stop)
                if not got:
                    raise PolicyError(f"{self.base_url} answered with no choices")
                completions.extend(got)
            results.append(completions[:k])
        return results

    def _request(self, prompt: Prompt, n: int, stop: list[str] | None = None) -> list[Completion]:
        chat = not isinstance(prompt, str)
        body: dict[str, Any] = {
            "model": self.model,
            "n": n,
            "temperature": self.temperature,
            "max_tokens": self.max_new_tokens,
        }
        if stop:  # the endpoint leaves the stop string out; it is put back below
            body["stop"] = stop
        if chat:
            body.update(messages=prompt, logprobs=True, top_logprobs=1)
        else:
            body.update(prompt=prompt, logprobs=1)
        if self.seed is not None:
            body["seed"] = self.seed + self._requests
        self._requests += 1
        reply = self._post("/chat/completions" if chat else "/completions", body)
        try:
            found = [_chat_choice(c) if chat else _text_choice(c) for c in reply["choices"]]
            for completion, choice in zip(found, reply["choices"], strict=True):
                if (
                    stop
                    and choice.get("finish_reason") == "stop"
                    and not any(s in completion.text for s in stop)
                ):
                    completion.text += stop[0]
                completion.text = reply_opening(prompt) + completion.text
            return found
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(
                f"{self.base_url} answered in an unexpected format ({exc!r}): {json.dumps(reply)[:300]}"
            ) from exc

    def _post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + route
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            hint = " (check the API key)" if exc.code in (401, 403) else ""
            raise PolicyError(f"{url} answered HTTP {exc.code}{hint}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PolicyError(
                f"cannot reach the endpoint {url}: {reason}; is the server running and OPENAI_BASE_URL right?"
            ) from exc
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{url} answered with something that is not JSON: {raw[:200]!r}") from exc

    def load_adapter(self, path: str | Path) -> None:
        """Frozen weights: nothing to load."""

    def release(self) -> None:
        """Nothing is held locally."""

    def state_dict(self) -> dict[str, Any]:
        return {"requests": self._requests}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._requests = int(state["requests"])


def _chat_choice(choice: dict[str, Any]) -> Completion:
    content = (choice.get("logprobs") or {}).get("content") or []
    return Completion(
        text=choice["message"].get("content") or "",
        logprobs=[float(t["logprob"]) for t in content],
        finish_reason=choice.get("finish_reason") or "stop",
    )


def _text_choice(choice: dict[str, Any]) -> Completion:
    token_logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
    return Completion(
        text=choice["text"],
        logprobs=[float(x) for x in token_logprobs if x is not None],
        finish_reason=choice.get("finish_reason") or "stop",
    )
