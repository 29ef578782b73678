"""Sampling with transformers `generate`, batched, on the CPU or a GPU, with the current LoRA adapter.

Log-probabilities come from the scores `generate` samples from (temperature applied, and top-k/top-p
truncation when configured, so q is then the truncated, renormalised distribution). Every other
logits processor a model's generation_config may switch on (repetition penalty and the like) is
switched off, so q is exactly softmax(logits / temperature) unless truncation is asked for.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kerneldisc.errors import ConfigError
from kerneldisc.policy.base import Completion, LocalSampler, Prompt, reply_opening
from kerneldisc.policy.models import load_causal_lm

if TYPE_CHECKING:
    from kerneldisc.learn.trainer import Trainer


def prompt_token_ids(tokenizer, prompt: Prompt) -> list[int]:
    """Chat messages through the model's chat template (with the assistant turn opened); a raw string
    tokenised as it is."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt).input_ids)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("chat messages need a model with a chat template; pass the prompt as one string")
    if reply_opening(prompt):  # the assistant's turn is already open: continue it
        text = tokenizer.apply_chat_template(prompt, continue_final_message=True, tokenize=False)
    else:
        text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    # The template already wrote the special tokens; the tokenizer must not add a second BOS.
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _cache_keyword(model) -> str:
    """transformers 5 renamed the key/value cache argument from `past_key_values` to `cache`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _stop_end(tokenizer, tokens: list[int], stop_strings: list[str]) -> int | None:
    """How many tokens make the reply up to and including the first stop string, or None."""
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    if not any(s in text for s in stop_strings):
        return None
    low, high = 1, len(tokens)  # the shortest prefix whose text holds a stop string
    while low < high:
        mid = (low + high) // 2
        if any(s in tokenizer.decode(tokens[:mid], skip_special_tokens=True) for s in stop_strings):
            high = mid
        else:
            low = mid + 1
    return low


class HFPolicy(LocalSampler):
    """transformers sampling. Given a `trainer`, it samples from the trainer's own (LoRA) model
    instead of loading a second copy, and follows that model wherever the trainer moves it."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        device: str = "cpu",
        seed: int = 0,
        temperature: float = 1.0,
        max_new_tokens: int = 1024,
        top_k: int | None = None,
        top_p: float | None = None,
        batch_size: int = 16,
        trainer: Trainer | None = None,
    ) -> None:
        if model_dir is None and trainer is None:
            raise ConfigError("the hf policy needs a model folder or a trainer to share")
        model_dir = Path(model_dir) if model_dir is not None else trainer.model_dir
        super().__init__(model_dir, device, seed, temperature, max_new_tokens)
        self.top_k = top_k
        self.top_p = top_p
        self.batch_size = batch_size
        self.trainer = trainer
        self._model = None
        self._tokenizer = None
        self._adapters_loaded = 0
        # Sampling draws on the generator of the device the logits live on.
        self._rng_device_type = "cuda" if device.startswith("cuda") else "cpu"
        self._rng = torch.Generator(device=device).manual_seed(seed).get_state()

    # --- the model ------------------------------------------------------------------------------

    def _loaded(self):
        """(model, tokenizer), loading them (and the adapter) if released or not loaded yet."""
        if self.trainer is not None:
            self.trainer.to(self.device)
            return self.trainer.model, self.trainer.tokenizer
        if self._model is None:
            self._model, self._tokenizer = load_causal_lm(self.model_dir, self.device)
            if self.adapter_path is not None:
                self._attach(self.adapter_path)
        return self._model, self._tokenizer

    def _attach(self, path: Path) -> None:
        from peft import PeftModel

        from kerneldisc.peft_compat import quiet_peft

        with quiet_peft():
            if isinstance(self._model, PeftModel):
                # Swap under a new name, then drop the old one: never two full adapters' worth of copies.
                old = self._model.active_adapter
                self._adapters_loaded += 1
                name = f"adapter-{self._adapters_loaded}"
                self._model.load_adapter(path, adapter_name=name)
                self._model.set_adapter(name)
                self._model.delete_adapter(old)
            else:
                self._model = PeftModel.from_pretrained(self._model, path)
        self._model.eval()

    def load_adapter(self, path: str | Path) -> None:
        path = Path(path)
        if self.trainer is not None:
            # Sharing the trainer's model: it samples from the live adapter, which is what the trainer
            # just saved. Loading any other adapter would silently overwrite the trainer's weights.
            if (
                self.trainer.adapter_path is None
                or path.resolve() != Path(self.trainer.adapter_path).resolve()
            ):
                raise ConfigError(
                    f"this hf policy samples from its trainer's live adapter; it cannot load {path} "
                    f"(the trainer's last saved adapter is {self.trainer.adapter_path})"
                )
            return
        if not (path / "adapter_config.json").is_file():
            raise ConfigError(f"{path} is not a LoRA adapter folder: adapter_config.json is missing")
        self.adapter_path = path
        if self._model is not None:
            self._attach(path)

    def release(self) -> None:
        if self.trainer is not None:
            self.trainer.release()
            return
        self._model = None
        self._tokenizer = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self._rng.clone(), "rng_device_type": self._rng_device_type}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng = state["rng"].clone()
        self._rng_device_type = state["rng_device_type"]

    # --- sampling -------------------------------------------------------------------------------

    def sample(self, prompts: list[Prompt], k: int, stop: list[str] | None = None) -> list[list[Completion]]:
        model, tokenizer = self._loaded()
        prompt_ids = [prompt_token_ids(tokenizer, p) for p in prompts]
        jobs = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(k)]
        results: list[list[Completion]] = [[] for _ in prompts]
        for start in range(0, len(jobs), self.batch_size):
            chunk = jobs[start : start + self.batch_size]
            generated = self._generate(model, tokenizer, [ids for _, ids in chunk], stop or [])
            for (i, _), completion in zip(chunk, generated, strict=True):
                completion.text = reply_opening(prompts[i]) + completion.text
                results[i].append(completion)
        return results

    def _generate(
        self, model, tokenizer, batch: list[list[int]], stop_strings: list[str]
    ) -> list[Completion]:
        from transformers import GenerationConfig

        pad = tokenizer.pad_token_id
        stop = eos_ids(model, tokenizer)
        width = max(len(ids) for ids in batch)
        # Each reply fits the model's context after its prompt, and the configured cap.
        context = getattr(model.config, "max_position_embeddings", None) or (width + self.max_new_tokens)
        budget = max(1, min(self.max_new_tokens, context - width))
        # Left padding: every row's next token is generated at the same column.
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        config = GenerationConfig(
            do_sample=True,
            temperature=self.temperature,
            top_k=self.top_k or 0,
            top_p=self.top_p or 1.0,
            repetition_penalty=1.0,
            typical_p=1.0,
            max_new_tokens=budget,
            eos_token_id=sorted(stop),
            stop_strings=stop_strings or None,
            pad_token_id=pad,
            return_dict_in_generate=True,
            output_scores=True,
        )
        shared = {}
        if len(batch) > 1 and len(batch[0]) > 1 and all(ids == batch[0] for ids in batch):
            shared[_cache_keyword(model)] = self._prompt_cache(model, batch[0], len(batch))
        extra = {"tokenizer": tokenizer} if stop_strings else {}
        with torch.no_grad(), self._own_rng():
            out = model.generate(
                input_ids=input_ids, attention_mask=mask, generation_config=config, **shared, **extra
            )
        new = out.sequences[:, width:]
        # scores[t] is what token t was drawn from; gather step by step, never (batch, steps, vocab).
        logprobs = torch.stack(
            [
                torch.log_softmax(s.float(), dim=-1).gather(1, new[:, t : t + 1]).squeeze(1)
                for t, s in enumerate(out.scores)
            ],
            dim=1,
        ).cpu()
        completions = []
        for b, ids in enumerate(batch):
            tokens = new[b].tolist()
            end = next((t + 1 for t, tok in enumerate(tokens) if tok in stop), None)
            if stop_strings:  # the first token whose text completes a stop string ends the reply
                at = _stop_end(tokenizer, tokens[: end or len(tokens)], stop_strings)
                end = at if at is not None else end
            finish = "stop" if end is not None else "length"
            end = end if end is not None else len(tokens)
            completions.append(
                Completion(
                    text=tokenizer.decode(tokens[:end], skip_special_tokens=True),
                    prompt_token_ids=list(ids),
                    token_ids=tokens[:end],
                    logprobs=logprobs[b, :end].tolist(),
                    finish_reason=finish,
                )
            )
        return completions

    def _prompt_cache(self, model, ids: list[int], rows: int):
        """Keys and values of one prompt (all but its last token, which generate feeds itself),
        computed once and repeated for each row: K copies of a long prompt cost one prefill, not K."""
        from transformers import DynamicCache

        try:
            cache = DynamicCache(config=model.config)
        except TypeError:  # transformers before 4.56 builds it without the config
            cache = DynamicCache()
        with torch.no_grad():
            model(
                input_ids=torch.tensor([ids[:-1]], device=self.device),
                use_cache=True,
                **{_cache_keyword(model): cache},
            )
        cache.batch_repeat_interleave(rows)
        return cache

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Run with this policy's generator state, then keep the advanced state: sampling is
        reproducible from (seed, calls) and neither disturbs nor depends on the global RNG."""
        cuda = self._rng_device_type == "cuda"
        index = (torch.device(self.device).index or 0) if cuda else None
        with torch.random.fork_rng(devices=[index] if cuda else []):
            if cuda:
                torch.cuda.set_rng_state(self._rng, index)
            else:
                torch.set_rng_state(self._rng)
            yield
            self._rng = torch.cuda.get_rng_state(index) if cuda else torch.get_rng_state()
