"""`kerneldisc bench`: run a suite of evaluations and discoveries, one entry after another."""

from __future__ import annotations

import argparse
from pathlib import Path

from kerneldisc.errors import ConfigError

EPILOG = """\
examples:
  kerneldisc bench benchmarks/reference.yml                  # every reference task, CPU or GPU
  kerneldisc bench benchmarks/ttt_vs_bestofn.yml --out bench_runs/ablation
  kerneldisc bench benchmarks/ttt_vs_bestofn.yml --out bench_runs/ablation --resume
  kerneldisc bench benchmarks/kernelbench.yml --set kernelbench_root=~/KernelBench
  kerneldisc report bench_runs/ablation                      # tables and plots of the results
  kerneldisc bench benchmarks/reference.yml --ray auto       # evaluations across a Ray cluster

Each entry writes <out>/entries/<name>/outcome.json (done or failed, with the error); a failed
entry never stops the suite. With several GPUs visible, entries run in parallel, one per GPU.
The exit status is 0 when every entry is done, 1 when any failed. See docs/reports.md.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark suite (YAML): evaluations and discoveries over several tasks",
        description="Run every entry of a suite file and record each one's outcome.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("suite", help="suite file, e.g. benchmarks/reference.yml")
    p.add_argument("--out", help="output folder (default bench_runs/<suite name>/<timestamp>/)")
    p.add_argument("--resume", action="store_true", help="continue in --out, skipping entries already done")
    p.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="VAR=VALUE",
        help="value of a suite variable, e.g. kernelbench_root=/data/KernelBench (repeatable)",
    )  # fmt: skip
    p.add_argument("--device", help="auto | cpu | cuda: overrides the suite's device")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run the entries' evaluations on a Ray cluster (auto, ray://host:10001, host:port; "
                        "without one, a Ray started here); entries run side by side (docs/cluster.md)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kerneldisc.bench import default_out_dir, load_suite, run_suite

    overrides = {}
    for item in args.assignments:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {item!r}: expected VAR=VALUE, e.g. kernelbench_root=/data/KernelBench")
        overrides[name.strip()] = value.strip()
    if args.resume and not args.out:
        raise ConfigError("--resume needs --out DIR: the bench folder to continue")
    suite = load_suite(args.suite, overrides)
    if args.device:
        suite.device = args.device
    out = Path(args.out) if args.out else default_out_dir(suite)
    result = run_suite(suite, out, resume=args.resume, ray=args.ray)
    print(
        f"results: {result.out_dir} ({len(result.outcomes) - len(result.failed)} done, {len(result.failed)} failed)"
    )
    for outcome in result.failed:
        cause = (str(outcome.get("error") or "").strip().splitlines() or [""])[0][:300]
        print(f"  failed: {outcome.get('name')}: {cause}")
    print(f"report: kerneldisc report {result.out_dir}")
    return 1 if result.failed else 0
