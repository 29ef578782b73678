"""How fast the hf policy samples and the trainer steps, with the embedded model on this machine.

    .venv/bin/python benchmarks/policy_speed.py [--device cpu] [--k 4] [--max-new-tokens 128] [--json]

Reports sampling throughput (generated tokens per second, K completions of one chat prompt in one
batch) and the trainer's seconds per step per 1,000 completion tokens (those K completions, advantages
+1/-1, the KL pass included). Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy import make_policy, resolve_model

PROMPT = [
    {"role": "system", "content": "You are an expert GPU kernel engineer."},
    {"role": "user", "content": "Write a Triton kernel that adds two float32 vectors, with its launcher."},
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="model id or folder (default: the embedded SmolLM2-135M)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    model_dir = resolve_model(args.model)
    resolve_s = time.perf_counter() - t0

    policy = make_policy("hf", model_dir, device=args.device, seed=0, max_new_tokens=args.max_new_tokens)
    policy.sample([PROMPT], 1)  # load the weights and warm up outside the timed region
    t0 = time.perf_counter()
    completions = policy.sample([PROMPT], args.k)[0]
    sample_s = time.perf_counter() - t0
    generated = sum(len(c.token_ids) for c in completions)
    policy.release()

    trainer = Trainer(model_dir, TrainerConfig(device=args.device))
    samples = [(c, 1.0 if i % 2 == 0 else -1.0) for i, c in enumerate(completions)]
    stats = trainer.step(samples)
    sequence_tokens = sum(len(c.prompt_token_ids) + len(c.token_ids) for c in completions)

    result = {
        "model": str(model_dir),
        "device": args.device
        if args.device != "cpu"
        else f"cpu ({platform.processor() or platform.machine()})",
        "torch_threads": torch.get_num_threads(),
        "resolve_model_s": resolve_s,
        "k": args.k,
        "generated_tokens": generated,
        "sampling_s": sample_s,
        "sampling_tokens_per_s": generated / sample_s,
        "train_completion_tokens": stats["tokens"],
        "train_sequence_tokens": sequence_tokens,
        "train_step_s": stats["seconds"],
        "train_s_per_1000_tokens": stats["seconds"] / stats["tokens"] * 1000,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    rows = [
        ("model", result["model"]),
        ("device", f"{result['device']}, {result['torch_threads']} torch threads"),
        ("resolve model (s)", f"{resolve_s:.2f}"),
        (
            f"hf sampling, k={args.k}",
            f"{generated} tokens in {sample_s:.2f} s = {generated / sample_s:.1f} tokens/s",
        ),
        (
            "trainer step",
            f"{stats['tokens']} completion tokens ({sequence_tokens} with prompts) in {stats['seconds']:.2f} s",
        ),
        ("trainer s / 1,000 tokens", f"{result['train_s_per_1000_tokens']:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
