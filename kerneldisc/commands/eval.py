"""`kerneldisc eval TASK CANDIDATE`: judge one candidate kernel in the sandboxed evaluator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kerneldisc.errors import ConfigError

EPILOG = """\
examples:
  kerneldisc eval vectoradd reference_kernels/vectoradd/submission.py
  kerneldisc eval softmax my_kernel.py --device cpu --json
  kerneldisc eval path/to/level1_problem.py model_new.py --timeout 300

The exit status is 0 whenever a verdict was reached, whatever it says (read `status` with
--json); 2 for bad usage, a missing file or a malformed task. See docs/evaluator.md.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="judge one candidate kernel: correctness on every test, then its runtime against the reference",
        description=(
            "Run a candidate in a sandboxed child process, check it on fresh salted inputs against the "
            "task's reference, time it and the reference with the same protocol, and print the verdict."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "task",
        help="a task name under reference_kernels/, a task folder, or a KernelBench file (optionally with options: 19_ReLU.py?precision=bf16&batch_size=16, see docs/tasks.md)",
    )
    p.add_argument(
        "candidate", help="the candidate .py file (custom_kernel(data), or ModelNew for KernelBench)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON verdict on stdout")
    p.add_argument(
        "--timeout", type=float, default=180.0, metavar="SEC", help="wall-time limit for the candidate"
    )
    p.add_argument(
        "--time-budget", type=float, default=None, metavar="SEC",
        help="timing budget per benchmark (default 0.4 s on the CPU, 2 s on a GPU)",
    )  # fmt: skip
    p.add_argument(
        "--memory-limit", type=int, default=None, metavar="MB", help="memory limit of the candidate"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kerneldisc.evaluate import EvalConfig, evaluate
    from kerneldisc.task import load_task

    if args.time_budget is not None and args.time_budget <= 0:
        raise ConfigError(f"--time-budget must be positive, got {args.time_budget}")
    cfg = EvalConfig(
        device=args.device,
        timeout_s=args.timeout,
        time_budget_s=args.time_budget,
        memory_limit_mb=args.memory_limit,
    )
    task = load_task(args.task)
    verdict = evaluate(task, Path(args.candidate), cfg)
    if args.json:
        print(json.dumps(verdict.to_dict()))
    else:
        print(verdict.summary())
    return 0
