"""The transformers policy: K completions with the log-probabilities they were sampled with."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_models import _one_thread, embedded_model, tiny_model  # noqa: F401  (shared fixtures)
from test_trainer import pushed
from transformers import AutoTokenizer

from kerneldisc.errors import ConfigError
from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy import Completion, make_policy
from kerneldisc.policy.hf import HFPolicy
from kerneldisc.policy.models import load_causal_lm

CHAT = [{"role": "user", "content": "Write a Python function that squares a number."}]
RAW = "The fastest way to add two vectors on a GPU is"


def _forward_logprobs(model, completion: Completion, temperature: float) -> list[float]:
    """log softmax(logits / T) of each completion token, from one unpadded forward pass."""
    ids = torch.tensor([completion.prompt_token_ids + completion.token_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    start = len(completion.prompt_token_ids)
    lp = torch.log_softmax(logits[start - 1 : -1] / temperature, dim=-1)
    return lp.gather(1, ids[0, start:].unsqueeze(1)).squeeze(1).tolist()


@pytest.mark.slow
def test_embedded_model_gives_k_completions_whose_logprobs_match_a_forward_pass(embedded_model):  # noqa: F811
    temperature = 0.7
    policy = make_policy(
        "hf", embedded_model, seed=1, temperature=temperature, max_new_tokens=16, batch_size=3
    )
    groups = policy.sample([CHAT, RAW], k=2)  # prompts of different lengths share a left-padded batch
    assert [len(g) for g in groups] == [2, 2]
    model, tokenizer = load_causal_lm(embedded_model)
    for group in groups:
        for c in group:
            assert 0 < len(c.token_ids) <= 16
            assert len(c.logprobs) == len(c.token_ids)
            assert all(lp <= 0 for lp in c.logprobs)
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
            expected = _forward_logprobs(model, c, temperature)
            assert max(abs(a - b) for a, b in zip(c.logprobs, expected, strict=True)) < 1e-3
    assert groups[0][0].prompt_token_ids != groups[1][0].prompt_token_ids


def test_copies_of_one_prompt_share_one_prefill_and_keep_exact_logprobs(tiny_model, monkeypatch):  # noqa: F811
    prefills = []
    original = HFPolicy._prompt_cache
    monkeypatch.setattr(
        HFPolicy, "_prompt_cache", lambda self, *a: prefills.append(a[2]) or original(self, *a)
    )
    policy = HFPolicy(tiny_model, seed=4, temperature=0.9, max_new_tokens=8, batch_size=3)
    replies = policy.sample([RAW * 8], k=3)[0]
    assert prefills == [3]
    model, _ = load_causal_lm(tiny_model)
    for c in replies:
        expected = _forward_logprobs(model, c, 0.9)
        assert max(abs(a - b) for a, b in zip(c.logprobs, expected, strict=True)) < 1e-3
    assert len({tuple(c.token_ids) for c in replies}) == 3  # the rows still draw independently


@pytest.mark.slow
def test_completion_stops_at_end_of_sequence_or_at_the_length_limit(embedded_model):  # noqa: F811
    policy = HFPolicy(embedded_model, seed=0, max_new_tokens=20)
    replies = policy.sample([[{"role": "user", "content": "Reply with the single word: yes"}]], k=4)[0]
    eos = AutoTokenizer.from_pretrained(embedded_model, local_files_only=True).eos_token_id
    for c in replies:
        assert eos not in c.token_ids[:-1]  # nothing after the first end-of-sequence token
        if c.finish_reason == "stop":
            assert c.token_ids[-1] == eos
        else:
            assert c.finish_reason == "length" and len(c.token_ids) == 20
    assert any(c.finish_reason == "stop" for c in replies)


def test_same_seed_same_samples_and_state_dict_replays_the_next_draw(tiny_model):  # noqa: F811
    a, b = HFPolicy(tiny_model, seed=7, max_new_tokens=6), HFPolicy(tiny_model, seed=7, max_new_tokens=6)
    assert a.sample([RAW], 2) == b.sample([RAW], 2)
    state = a.state_dict()
    first = a.sample([RAW], 2)
    a.load_state_dict(state)
    assert a.sample([RAW], 2) == first
    assert HFPolicy(tiny_model, seed=8, max_new_tokens=6).sample([RAW], 2) != HFPolicy(
        tiny_model, seed=7, max_new_tokens=6
    ).sample([RAW], 2)


def test_sampling_neither_uses_nor_disturbs_the_global_rng(tiny_model):  # noqa: F811
    policy = HFPolicy(tiny_model, seed=7, max_new_tokens=6)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    policy.sample([RAW], 2)
    assert torch.equal(torch.rand(3), expected)


def test_top_k_logprobs_are_those_of_the_truncated_distribution(tiny_model):  # noqa: F811
    replies = HFPolicy(tiny_model, seed=0, max_new_tokens=5, top_k=1).sample([RAW], 2)[0]
    # One candidate per step: the truncated distribution puts all its mass on it.
    assert all(lp == pytest.approx(0.0, abs=1e-6) for c in replies for lp in c.logprobs)
    assert replies[0].token_ids == replies[1].token_ids


def test_loaded_adapter_is_used_for_the_next_samples(tiny_model, tmp_path):  # noqa: F811
    trainer = Trainer(tiny_model, TrainerConfig(lora_rank=4, lr=1e-2, kl_coef=0.0))
    policy = HFPolicy(tiny_model, seed=2, max_new_tokens=6)
    first = policy.sample([RAW], 2)[0]
    trainer.step(pushed([(first[0], 1.0), (first[1], -1.0)]))
    policy.load_adapter(trainer.save_adapter_for_sampling())
    second = policy.sample([RAW], 2)[0]
    # The policy's sampling log-probs are the trained model's, not the base model's.
    for c, lps in zip(second, trainer.logprobs(second), strict=True):
        assert max(abs(a - b) for a, b in zip(c.logprobs, lps, strict=True)) < 1e-3
    # A second adapter replaces the first; release then sample reloads weights and adapter.
    trainer.step(pushed([(second[0], 1.0), (second[1], -1.0)]))
    policy.load_adapter(trainer.save(tmp_path / "ckpt"))
    policy.release()
    third = policy.sample([RAW], 1)[0]
    assert max(abs(a - b) for a, b in zip(third[0].logprobs, trainer.logprobs(third)[0], strict=True)) < 1e-3
    with pytest.raises(ConfigError, match="adapter_config.json is missing"):
        policy.load_adapter(tmp_path)


def test_policy_sharing_the_trainer_samples_from_its_live_adapter(tiny_model, tmp_path):  # noqa: F811
    trainer = Trainer(tiny_model, TrainerConfig(lora_rank=4, lr=1e-2, kl_coef=0.0))
    policy = make_policy("hf", tiny_model, seed=2, max_new_tokens=6, trainer=trainer)
    assert policy.trainer is trainer
    first = policy.sample([RAW], 2)[0]
    trainer.step(pushed([(first[0], 1.0), (first[1], -1.0)]))
    policy.load_adapter(trainer.save_adapter_for_sampling())
    second = policy.sample([RAW], 2)[0]
    for c, lps in zip(second, trainer.logprobs(second), strict=True):
        assert max(abs(a - b) for a, b in zip(c.logprobs, lps, strict=True)) < 1e-3
    with pytest.raises(ConfigError, match="live adapter"):
        policy.load_adapter(tmp_path)


def test_unknown_policy_kind_and_option_are_named(tiny_model):  # noqa: F811
    with pytest.raises(ConfigError, match="hf, vllm, openai"):
        make_policy("llamafile", tiny_model)
    with pytest.raises(ConfigError, match="colour"):
        make_policy("hf", tiny_model, colour="blue")
    assert isinstance(make_policy("hf", tiny_model, base_url=None, api_key_env="OPENAI_API_KEY"), HFPolicy)


def test_chat_prompts_need_a_chat_template(tiny_model, tmp_path):  # noqa: F811
    shutil.copytree(tiny_model, tmp_path / "m", ignore=shutil.ignore_patterns("chat_template.jinja"))
    policy = HFPolicy(tmp_path / "m", max_new_tokens=2)
    assert policy.sample([RAW], 1)[0][0].token_ids  # raw strings still work
    with pytest.raises(ConfigError, match="chat template"):
        policy.sample([CHAT], 1)


def test_a_reply_the_prompt_opened_is_continued_and_its_text_starts_with_the_opening(tiny_model):  # noqa: F811
    from kerneldisc.policy.hf import prompt_token_ids

    prompt = [{"role": "user", "content": "Write a kernel."}, {"role": "assistant", "content": "```python\n"}]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    text = tokenizer.decode(prompt_token_ids(tokenizer, prompt))
    assert text.endswith("```python\n")  # the assistant's turn left open, not a new turn started
    (completions,) = HFPolicy(tiny_model, seed=1, max_new_tokens=5).sample([prompt], 2)
    for c in completions:
        assert c.text.startswith("```python\n") and 0 < len(c.token_ids) <= 5
        assert c.text == "```python\n" + tokenizer.decode(c.token_ids, skip_special_tokens=True)


def test_a_stop_string_ends_the_reply_at_the_token_that_completes_it(tiny_model):  # noqa: F811
    from kerneldisc.policy.hf import _stop_end

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokens = tokenizer(
        "def f(x):\n    return x\n```\nAnd some words after it.", add_special_tokens=False
    ).input_ids
    end = _stop_end(tokenizer, tokens, ["```"])
    assert "```" in tokenizer.decode(tokens[:end]) and "```" not in tokenizer.decode(tokens[: end - 1])
    assert "words" not in tokenizer.decode(tokens[:end])
    assert _stop_end(tokenizer, tokens[:3], ["```"]) is None


def test_each_reply_fits_the_models_context_after_its_prompt(tiny_model):  # noqa: F811
    """The tiny model's context is 512 tokens: a 500-token prompt leaves room for 12 at most,
    whatever the cap; the reply is cut there and says so."""
    policy = HFPolicy(tiny_model, seed=0, max_new_tokens=100)
    (completions,) = policy.sample(["word " * 499], 1)
    (c,) = completions
    assert len(c.prompt_token_ids) + len(c.token_ids) <= 512
