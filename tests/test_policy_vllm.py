"""The vLLM policy: a clear message without vLLM; on a GPU, sampling log-probs and adapter swaps."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from test_models import embedded_model  # noqa: F401  (shared fixture)
from test_trainer import pushed

from kerneldisc.errors import ConfigError
from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy import PolicyError, make_policy

needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="needs vLLM: pip install 'kerneldisc[vllm]'"
)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_error_says_how_to_install_it(tmp_path):
    with pytest.raises(PolicyError, match=r"pip install 'kerneldisc\[vllm\]'"):
        make_policy("vllm", model=tmp_path, device="cuda")


@pytest.mark.gpu
@needs_vllm
def test_vllm_logprobs_match_the_model_and_follow_each_new_adapter(embedded_model, tmp_path):  # noqa: F811
    policy = make_policy(
        "vllm", embedded_model, device="cuda", seed=0, max_new_tokens=16, gpu_memory_utilization=0.3
    )
    prompt = [{"role": "user", "content": "Write a haiku about GPUs."}]
    first = policy.sample([prompt], 4)[0]
    assert len(first) == 4 and all(len(c.logprobs) == len(c.token_ids) > 0 for c in first)

    trainer = Trainer(embedded_model, TrainerConfig(device="cuda", lr=1e-3))
    # bf16 engine against the bf16 trainer at step 0 (adapter zero): same distribution up to rounding.
    for c, lps in zip(first, trainer.logprobs(first), strict=True):
        assert torch.allclose(torch.tensor(c.logprobs), torch.tensor(lps), atol=0.1)

    trainer.step(pushed([(first[0], 1.0), (first[1], -1.0), (first[2], 1.0), (first[3], -1.0)]))
    policy.load_adapter(trainer.save_adapter_for_sampling())
    second = policy.sample([prompt], 4)[0]
    for c, lps in zip(second, trainer.logprobs(second), strict=True):
        assert torch.allclose(torch.tensor(c.logprobs), torch.tensor(lps), atol=0.1)

    policy.release()
    assert len(policy.sample([prompt], 1)[0]) == 1  # the engine comes back after release


def test_engine_sees_only_the_policy_gpu_while_it_starts(monkeypatch):
    from kerneldisc.policy.vllm import _only_gpu_visible

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with _only_gpu_visible("cuda:1"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    with _only_gpu_visible("cuda"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    with pytest.raises(ConfigError, match="2 GPU"), _only_gpu_visible("cuda:2"):
        pass
