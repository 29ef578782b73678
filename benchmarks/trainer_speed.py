"""What one trainer step costs, before and after the output head was limited to completion
positions, side by side in one run: completion tokens per second and peak memory per 1000
completion tokens, for a long prompt (where full logits cost prompt length x vocabulary).

    .venv/bin/python benchmarks/trainer_speed.py [--model DIR] [--prompt 2048] [--completion 128]
                                                 [--replies 8] [--json]

"before" is the earlier method (no gradient checkpointing; the model's full logits over every prompt and completion
position, then the completion positions picked); "after" is `Trainer._logprobs` as shipped (the
backbone over everything, the output head only where completion tokens are predicted, in
chunks recomputed in the backward pass). Each runs in a fresh process so the peak is its own:
resident memory on the CPU (ru_maxrss above the process's size after loading the model),
`torch.cuda.max_memory_allocated` on a GPU. Default model: the embedded SmolLM2-135M-Instruct
(vocabulary 49 152).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
import torch
sys.path.insert(0, {root!r})
from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy.base import Completion
from kerneldisc.rollout import Rollout

method, model, prompt_len, completion_len, replies, device = {args!r}


class Before(Trainer):
    def _logprobs(self, batch):
        pad = self.tokenizer.pad_token_id
        width = max(len(it.ids) for it in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, it in enumerate(batch):
            ids[b, : len(it.ids)] = torch.tensor(it.ids)
            mask[b, : len(it.ids)] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        logits = self.model(input_ids=ids, attention_mask=mask).logits
        rows = torch.cat([torch.full((it.n_completion,), b) for b, it in enumerate(batch)]).to(self.device)
        cols = torch.cat([torch.arange(it.start, len(it.ids)) for it in batch]).to(self.device)
        picked = logits[rows, cols - 1].float() / self.cfg.temperature
        lp = picked.gather(1, ids[rows, cols].unsqueeze(1)).squeeze(1) - torch.logsumexp(picked, dim=1)
        return list(lp.split([it.n_completion for it in batch]))


cls = Before if method == "before" else Trainer
checkpointing = False if method == "before" else "auto"  # as shipped before, and now
trainer = cls(model, TrainerConfig(lora_rank=32, lr=1e-4, kl_coef=0.0, device=device, gradient_checkpointing=checkpointing))
gen = torch.Generator().manual_seed(0)
vocab = trainer.model.get_input_embeddings().weight.shape[0]
prompt = torch.randint(0, vocab, (prompt_len,), generator=gen).tolist()
rollouts = []
for i in range(replies):
    tokens = torch.randint(0, vocab, (completion_len,), generator=gen).tolist()
    c = Completion("x", prompt, tokens, [-1.0] * completion_len, "stop")
    rollouts.append(Rollout(step=1, parent="s", completion=c, advantage=1.0 if i % 2 else -1.0))
if device.startswith("cuda"):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
else:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
trainer.step(rollouts)
if device.startswith("cuda"):
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_bytes": peak}}))
"""


def measure(method: str, model: str, prompt: int, completion: int, replies: int, device: str) -> dict:
    code = CHILD.format(root=str(ROOT), args=(method, model, prompt, completion, replies, device))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    tokens = completion * replies
    return {
        "method": method,
        "completion_tokens": tokens,
        "prompt_tokens_per_reply": prompt,
        "seconds": round(found["seconds"], 2),
        "tokens_per_second": round(tokens / found["seconds"], 1),
        "peak_mb_per_1k_completion_tokens": round(found["peak_bytes"] / 2**20 / (tokens / 1000), 1),
    }


def main() -> int:
    from kerneldisc.policy import resolve_model

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model folder (default: the embedded SmolLM2-135M)")
    parser.add_argument("--prompt", type=int, default=2048, help="prompt tokens per reply")
    parser.add_argument("--completion", type=int, default=128, help="completion tokens per reply")
    parser.add_argument("--replies", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = str(resolve_model(args.model))
    rows = [
        measure(m, model, args.prompt, args.completion, args.replies, args.device)
        for m in ("before", "after")
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{args.replies} replies x ({args.prompt} prompt + {args.completion} completion tokens), {args.device}"
    )
    print(f"{'method':8} {'seconds':>8} {'tok/s':>8} {'peak MB / 1k completion tokens':>32}")
    for r in rows:
        print(
            f"{r['method']:8} {r['seconds']:8.2f} {r['tokens_per_second']:8.1f} "
            f"{r['peak_mb_per_1k_completion_tokens']:32.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
