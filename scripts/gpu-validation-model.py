"""Helpers of scripts/gpu-validation.sh.

python scripts/gpu-validation-model.py FOLDER
    writes a tiny random two-layer Llama with the embedded model's tokenizer to FOLDER (run
    where `make setup` was done: the tokenizer comes from the embedded SmolLM2 package); it
    is small enough to travel to a GPU machine with the checkout.
python scripts/gpu-validation-model.py --discover FOLDER RUN_DIR
    runs one scripted discovery step on the GPU with that model (sampling, the evaluator,
    a LoRA trainer step) and prints the step record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_model(folder: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from kerneldisc.policy.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(None), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    print(f"tiny model written to {folder}")


def discover(model: Path, out: Path, device: str = "cuda") -> None:
    import yaml

    from kerneldisc.config import make_config
    from kerneldisc.loop import run_discovery
    from kerneldisc.run_folder import read_jsonl

    submission = (ROOT / "reference_kernels" / "vectoradd" / "submission.py").read_text()
    replies = [f"```python\n{submission.replace('block = 1024', 'block = 4096')}```", "no code here"]
    out.mkdir(parents=True, exist_ok=True)
    script = out.parent / "replies.yml"
    script.write_text(yaml.safe_dump(replies))
    cfg = make_config(dict(
        task="vectoradd", model=str(model), policy="scripted", script=str(script), steps=1, groups=2,
        group_size=4, device=device, out=str(out), lr=1e-3, lora_rank=4, eval_timeout_s=120, max_new_tokens=64,
    ))  # fmt: skip
    run = run_discovery(cfg, echo=print)
    print(json.dumps(read_jsonl(run / "steps.jsonl")[-1], indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "--discover":
        discover(Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:5])
    else:
        make_model(Path(sys.argv[1]))
