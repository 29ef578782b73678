"""The LoRA policy-gradient step: direction of the update, what changes, checkpoints, micro-batching."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from test_models import _one_thread, embedded_model, tiny_model  # noqa: F401  (shared fixtures)

from kerneldisc.errors import ConfigError
from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy import Completion
from kerneldisc.policy.hf import HFPolicy
from kerneldisc.rollout import Rollout


@pytest.fixture(scope="module")
def completions(tiny_model) -> list[Completion]:  # noqa: F811
    """Four real samples (two prompts x 2) from the tiny model."""
    policy = HFPolicy(tiny_model, seed=3, max_new_tokens=12)
    prompts = [[{"role": "user", "content": "Write a kernel."}], "def add(a, b):"]
    return [c for group in policy.sample(prompts, 2) for c in group]


def pushed(pairs) -> list[Rollout]:
    """Rollouts as the loop hands them to the trainer: a completion and its advantage."""
    return [Rollout(step=1, parent="s", completion=c, advantage=float(a)) for c, a in pairs]


def _trainer(model_dir, **kw) -> Trainer:
    return Trainer(model_dir, TrainerConfig(**{"lr": 1e-3, "lora_rank": 8, "kl_coef": 0.0, **kw}))


def _total(lps: list[float]) -> float:
    return float(sum(lps))


def test_step_raises_the_favoured_completion_and_lowers_the_other(tiny_model, completions):  # noqa: F811
    trainer = _trainer(tiny_model, kl_coef=0.1)
    good, bad = completions[0], completions[1]
    before = trainer.logprobs([good, bad])
    stats = trainer.step(pushed([(good, 1.0), (bad, -1.0)]))
    after = trainer.logprobs([good, bad])
    assert _total(after[0]) > _total(before[0])
    assert _total(after[1]) < _total(before[1])
    assert stats["tokens"] == len(good.token_ids) + len(bad.token_ids)
    assert stats["step"] == trainer.step_count == 1
    assert stats["grad_norm"] > 0
    # On-policy samples: the importance ratio starts at 1 and the adapter starts at zero (no KL).
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-3)
    assert abs(stats["kl"]) < 1e-3


def test_step_changes_lora_weights_and_never_base_weights(tiny_model, completions):  # noqa: F811
    trainer = _trainer(tiny_model)
    params = dict(trainer.model.named_parameters())
    before = {name: p.detach().clone() for name, p in params.items()}
    trainer.step(pushed([(completions[0], 1.0), (completions[1], -1.0)]))
    lora = [n for n in params if "lora_" in n]
    base = [n for n in params if "lora_" not in n]
    assert lora and base
    assert all(params[n].requires_grad for n in lora)
    assert not any(params[n].requires_grad for n in base)
    assert any(not torch.equal(params[n], before[n]) for n in lora)
    assert all(torch.equal(params[n], before[n]) for n in base)


def test_lora_reaches_attention_and_mlp_projections(tiny_model):  # noqa: F811
    names = {n for n, _ in _trainer(tiny_model).model.named_parameters() if "lora_A" in n}
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(f".{proj}." in n for n in names), proj
    assert not any("lm_head" in n for n in names)


def test_save_and_load_restore_adapter_optimizer_and_step(tiny_model, completions, tmp_path):  # noqa: F811
    trainer = _trainer(tiny_model)
    trainer.step(pushed([(completions[0], 1.0), (completions[1], -1.0)]))
    trainer.save(tmp_path / "ckpt")
    loaded = Trainer.load(tiny_model, tmp_path / "ckpt", trainer.cfg)
    assert loaded.step_count == 1
    assert loaded.adapter_path == tmp_path / "ckpt"
    assert loaded.logprobs(completions) == trainer.logprobs(completions)
    a, b = trainer.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for key, state in a["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["state"][key][name]), name
    # Both continue identically.
    trainer.step(pushed([(completions[2], 1.0), (completions[3], -1.0)]))
    loaded.step(pushed([(completions[2], 1.0), (completions[3], -1.0)]))
    assert loaded.logprobs(completions) == trainer.logprobs(completions)


def test_saving_over_a_checkpoint_replaces_it_whole(tiny_model, completions, tmp_path):  # noqa: F811
    trainer = _trainer(tiny_model)
    trainer.save(tmp_path / "ckpt")
    trainer.step(pushed([(completions[0], 1.0), (completions[1], -1.0)]))
    trainer.save(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no tmp or old folders left
    assert Trainer.load(tiny_model, tmp_path / "ckpt", trainer.cfg).step_count == 1


def test_loading_with_another_rank_names_the_saved_rank(tiny_model, tmp_path):  # noqa: F811
    _trainer(tiny_model).save(tmp_path / "ckpt")
    with pytest.raises(ConfigError, match="rank 8"):
        Trainer.load(tiny_model, tmp_path / "ckpt", TrainerConfig(lora_rank=4))


def test_loading_a_folder_that_is_no_checkpoint_says_what_is_missing(tiny_model, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError, match="trainer_state.pt is missing|adapter_config.json is missing"):
        Trainer.load(tiny_model, tmp_path, TrainerConfig(lora_rank=8))


def test_micro_batches_accumulate_to_the_same_update(tiny_model, completions):  # noqa: F811
    samples = [(c, a) for c, a in zip(completions, (1.0, -1.0, 0.5, -0.5), strict=True)]
    whole, split = _trainer(tiny_model, kl_coef=0.1), _trainer(tiny_model, kl_coef=0.1, token_budget=1)
    s1, s2 = whole.step(pushed(samples)), split.step(pushed(samples))
    assert (s1["micro_batches"], s2["micro_batches"]) == (1, 4)
    assert s1["loss"] == pytest.approx(s2["loss"], rel=1e-5)
    for (n, p), (_, q) in zip(whole.model.named_parameters(), split.model.named_parameters(), strict=True):
        if p.requires_grad:
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


def test_kl_shaping_narrows_the_gap_to_the_base_model(tiny_model, completions):  # noqa: F811
    trainer = _trainer(tiny_model, lr=3e-3)
    for _ in range(2):  # move away from the base model
        trainer.step(pushed([(completions[0], 1.0), (completions[1], -1.0)]))
    # On-policy copies: q is the current policy, so the ratio is 1 and only A_t drives the update.
    drawn = [
        replace(c, logprobs=lp) for c, lp in zip(completions, trainer.logprobs(completions), strict=True)
    ]

    def deltas() -> torch.Tensor:
        with trainer.model.disable_adapter():
            base = trainer.logprobs(drawn)
        return torch.tensor(
            [
                x - b
                for now, old in zip(trainer.logprobs(drawn), base, strict=True)
                for x, b in zip(now, old, strict=True)
            ]
        )

    before = deltas()
    trainer.cfg.kl_coef = 1.0
    trainer.optimizer.state.clear()  # fresh Adam moments: only this step's gradient acts
    for group in trainer.optimizer.param_groups:
        group["lr"] = 1e-4
    stats = trainer.step(pushed([(c, 0.0) for c in drawn]))  # no reward signal: only the KL term acts
    after = deltas()
    assert stats["kl"] == pytest.approx(float(before.mean()), abs=1e-4)
    # Tokens the adapter favours most over the base model are pushed down, the others up: the
    # per-token gap log pi - log p_base becomes more uniform.
    assert float(after.var()) < float(before.var())


def test_completions_without_token_ids_cannot_be_trained_on(tiny_model):  # noqa: F811
    reply = Completion(text="from an endpoint", logprobs=[-0.1, -0.2])
    with pytest.raises(ValueError, match="without token ids"):
        _trainer(tiny_model).step(pushed([(reply, 1.0)]))


@pytest.mark.slow
def test_step_on_the_embedded_model_moves_logprobs_the_right_way(embedded_model):  # noqa: F811
    policy = HFPolicy(embedded_model, seed=0, max_new_tokens=8)
    good, bad = policy.sample([[{"role": "user", "content": "Name a colour."}]], 2)[0]
    policy.release()
    trainer = Trainer(embedded_model, TrainerConfig(lr=1e-3, kl_coef=0.1))
    before = trainer.logprobs([good, bad])
    trainer.step(pushed([(good, 1.0), (bad, -1.0)]))
    after = trainer.logprobs([good, bad])
    assert _total(after[0]) > _total(before[0])
    assert _total(after[1]) < _total(before[1])


_PEAK = r"""
import json, resource, sys
import torch
from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy.base import Completion
from kerneldisc.rollout import Rollout

model, prompt_len, completion_len = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
trainer = Trainer(model, TrainerConfig(lora_rank=4, kl_coef=0.0, gradient_checkpointing=False))
vocab = trainer.model.get_input_embeddings().weight.shape[0]
gen = torch.Generator().manual_seed(0)
prompt = torch.randint(0, vocab, (prompt_len,), generator=gen).tolist()
rollouts = [
    Rollout(step=1, parent="s", advantage=1.0 - 2 * (i % 2), completion=Completion(
        "x", prompt, torch.randint(0, vocab, (completion_len,), generator=gen).tolist(), [-1.0] * completion_len))
    for i in range(4)
]
trainer.logprobs([rollouts[0].completion])  # every lazy allocation of a first pass, before the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
trainer.step(rollouts)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, "vocab": vocab}))
"""


def _step_peak_bytes(model, prompt_len: int, completion_len: int) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", _PEAK, str(model), str(prompt_len), str(completion_len)],
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return found["peak_kib"] * 1024, found["vocab"]


@pytest.mark.slow
def test_a_steps_peak_memory_follows_completion_tokens_not_prompt_length_times_vocabulary(tiny_model):  # noqa: F811
    """A 440-token prompt instead of a 40-token one, the same 32 completion tokens a reply: full
    logits would add 4 x 400 x vocabulary floats (over 300 MB for SmolLM2's 49 152); the head runs
    on completion positions only, so the peak barely moves."""
    short, vocab = _step_peak_bytes(tiny_model, 40, 32)
    long, _ = _step_peak_bytes(tiny_model, 440, 32)
    full_logits = 4 * 400 * vocab * 4
    assert long - short < full_logits / 4, (short, long, full_logits)
