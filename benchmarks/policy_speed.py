"""How fast the hf and vllm policies sample and the trainer steps, with the embedded model here.

    .venv/bin/python benchmarks/policy_speed.py [--device cpu] [--k 4] [--max-new-tokens 128] [--json]

Reports sampling throughput (generated tokens per second, K completions of one chat prompt in one
call) of the hf policy and, at the same settings in the same run, of the vllm policy, and the
trainer's seconds per step per 1,000 completion tokens (the hf policy's K completions, advantages
+1/-1, the KL pass included). vLLM runs here when it is importable, else with .venv-vllm's Python
(vLLM's CPU build, made by scripts/setup-test-extras.sh); without either its row says why. Not run by
the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from kerneldisc.learn.trainer import Trainer, TrainerConfig
from kerneldisc.policy import make_policy, resolve_model
from kerneldisc.rollout import Rollout

VLLM_PYTHON = Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"

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
    parser.add_argument("--vllm-only-to", type=Path, help=argparse.SUPPRESS)  # the vllm row, as JSON
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.vllm_only_to:
        args.vllm_only_to.write_text(json.dumps(vllm_sampling_here(resolve_model(args.model), args)))
        return 0

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
    vllm = vllm_sampling(model_dir, args)

    trainer = Trainer(model_dir, TrainerConfig(device=args.device))
    samples = [
        Rollout(step=1, parent=None, completion=c, advantage=1.0 if i % 2 == 0 else -1.0)
        for i, c in enumerate(completions)
    ]
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
        "vllm": vllm,
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
        (f"vllm sampling, k={args.k}", vllm_row(vllm)),
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


def vllm_sampling_here(model_dir: Path, args) -> dict:
    """The hf row's measurement with the vllm policy: the engine started and warmed up by one
    sample outside the timed region, then K completions of the same prompt."""
    t0 = time.perf_counter()
    policy = make_policy("vllm", model_dir, device=args.device, seed=0, max_new_tokens=args.max_new_tokens)
    policy.sample([PROMPT], 1)
    start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    completions = policy.sample([PROMPT], args.k)[0]
    sample_s = time.perf_counter() - t0
    policy.release()
    generated = sum(len(c.token_ids) for c in completions)
    return {
        "engine_start_s": start_s,
        "generated_tokens": generated,
        "sampling_s": sample_s,
        "sampling_tokens_per_s": generated / sample_s,
    }


def vllm_sampling(model_dir: Path, args) -> dict:
    """vllm_sampling_here, in this process when vLLM is importable, else with .venv-vllm's Python
    (vLLM's CPU build pins its own torch, so it cannot share this environment)."""
    if importlib.util.find_spec("vllm") is not None:
        return vllm_sampling_here(model_dir, args)
    if not VLLM_PYTHON.exists():
        return {"skipped": "vLLM is not installed here and there is no .venv-vllm"}
    env = dict(os.environ)
    if args.threads:  # the engine's process takes its thread count from the environment
        env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vllm.json"
        command = [str(VLLM_PYTHON), __file__, "--model", str(model_dir), "--device", args.device]
        command += [
            "--k",
            str(args.k),
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--vllm-only-to",
            str(out),
        ]
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        if run.returncode != 0 or not out.exists():
            return {"error": " | ".join(run.stderr.strip().splitlines()[-3:])}
        return json.loads(out.read_text())


def vllm_row(vllm: dict) -> str:
    if "sampling_s" not in vllm:
        return f"not measured: {vllm.get('skipped') or vllm.get('error')}"
    return (
        f"{vllm['generated_tokens']} tokens in {vllm['sampling_s']:.2f} s = "
        f"{vllm['sampling_tokens_per_s']:.1f} tokens/s (engine start {vllm['engine_start_s']:.1f} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
