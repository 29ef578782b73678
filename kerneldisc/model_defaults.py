"""Settings a run leaves to the model it uses, made concrete before the run starts (and written to
its config.yml, so a resume uses the same ones). The rules, and why, are in docs/models.md:

- prompt style: `compact` for the embedded 135M model (a full expert prompt is beyond it), else
  `full`;
- temperature: 0.7 for the embedded model (at 1.0 it writes almost no valid code to learn
  from), else the published 1.0;
- learning rate: the published 4e-5 was for a 120B-parameter model; smaller models need more,
  `4e-5 * sqrt(120e9 / parameters)`, between 4e-5 and 1e-3 (the embedded model: 1e-3, where it
  was measured to learn; 7B: 1.7e-4);
- new tokens per reply: what the model's context leaves after the prompt, at most the published
  26 000 on a GPU, 512 on a CPU, 128 for the compact style (a short module, whose reply ends at
  its closing fence).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

PUBLISHED_LR, PUBLISHED_PARAMETERS = 4e-5, 120e9
MAX_LR = 1e-3
NEW_TOKENS_CAP = {"cuda": 26_000, "cpu": 512, "compact": 128}


def is_embedded(model: str | None) -> bool:
    from kerneldisc.policy.models import EMBEDDED_ALIASES

    return model is None or str(model) in EMBEDDED_ALIASES


def prompt_style(model: str | None) -> str:
    return "compact" if is_embedded(model) else "full"


def temperature(model: str | None) -> float:
    return 0.7 if is_embedded(model) else 1.0


def learning_rate(parameters: int | None) -> float:
    if not parameters:
        return PUBLISHED_LR
    return min(MAX_LR, max(PUBLISHED_LR, PUBLISHED_LR * math.sqrt(PUBLISHED_PARAMETERS / parameters)))


def new_tokens_cap(device: str, style: str) -> int:
    if style == "compact":
        return NEW_TOKENS_CAP["compact"]
    return NEW_TOKENS_CAP["cuda" if device.startswith("cuda") else "cpu"]


def parameters(model_dir: Path | None) -> int | None:
    """Parameters of a Hugging Face folder, counted from its safetensors headers (nothing loaded)."""
    if model_dir is None:
        return None
    total = 0
    for path in Path(model_dir).glob("*.safetensors"):
        try:
            with open(path, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
        except (OSError, ValueError, struct.error):
            return None
        for name, meta in header.items():
            if name != "__metadata__":
                total += math.prod(meta.get("shape") or [1])
    return total or None


def context_length(model_dir: Path | None) -> int | None:
    """The model's context window from its config.json (max_position_embeddings)."""
    if model_dir is None:
        return None
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings") or config.get("n_positions")
    return int(value) if isinstance(value, int) and value > 0 else None
