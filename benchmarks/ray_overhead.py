"""What Ray adds to an evaluation: the same batch of distinct candidates judged by the local
evaluation pool and by a local Ray cluster's evaluators, with the same number of workers, side by
side in one run (alternately, `--repeats` times, medians compared, so background load hits both
alike). Target: Ray's overhead per evaluation under 10 % of a CPU evaluation's time.

    .venv/bin/python benchmarks/ray_overhead.py [--workers 2] [--batch 8] [--repeats 3] [--json]

The cluster is `ray.cluster_utils.Cluster`: a head without CPUs and `--workers` one-CPU nodes on
this machine, each holding one evaluator, as `kerneldisc discover --ray` places them. Both sides
time the reference once beforehand; each candidate is still a fresh sandboxed process, so what is
compared is Ray's dispatch, transfer and bookkeeping against a thread handing code to the
evaluator in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET = 0.10


def candidates(n: int, round_: int) -> list[str]:
    """Distinct trivial correct candidates (distinct text: nothing is deduplicated or cached)."""
    return [
        f"# {round_}-{i}\ndef custom_kernel(data):\n    a, b = data\n    return a + b\n" for i in range(n)
    ]


def local_batch(task, cfg, reference, codes: list[str], workers: int) -> float:
    from kerneldisc.evaluate import evaluate

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(pool.map(lambda code: evaluate(task, code, cfg, reference=reference), codes))
    elapsed = time.perf_counter() - start
    assert all(v.status == "ok" for v in verdicts), [v.message for v in verdicts if v.status != "ok"]
    return elapsed


def ray_batch(task, cfg, evaluators, codes: list[str]) -> float:
    references = evaluators.references
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=evaluators.count) as pool:
        judged = list(pool.map(lambda code: evaluators.judge(task, code, cfg, references), codes))
    elapsed = time.perf_counter() - start
    assert all(j.verdict.status == "ok" for j in judged), [j.verdict.message for j in judged]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="vectoradd")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TRITON_INTERPRET", "1")

    from ray.cluster_utils import Cluster

    from kerneldisc.evaluate import EvalConfig, measure_reference
    from kerneldisc.ray_evaluators import RayEvaluators, disconnect
    from kerneldisc.task import load_task

    task, cfg = load_task(args.task), EvalConfig(device="cpu")
    reference = measure_reference(task, cfg)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(args.workers):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        evaluators = RayEvaluators(cluster.address, "cpu", args.workers, echo=lambda _: None)
        evaluators.references = {}
        evaluators.reference(task, cfg, evaluators.references)
        ray_batch(task, cfg, evaluators, candidates(args.workers, -1))  # warm every evaluator's fork server
        local_batch(task, cfg, reference, candidates(args.workers, -2), args.workers)
        local, spread = [], []
        for r in range(args.repeats):
            local.append(local_batch(task, cfg, reference, candidates(args.batch, 2 * r), args.workers))
            spread.append(ray_batch(task, cfg, evaluators, candidates(args.batch, 2 * r + 1)))
        evaluators.close()
    finally:
        disconnect()
        cluster.shutdown()
    per_local = statistics.median(local) / args.batch
    per_ray = statistics.median(spread) / args.batch
    overhead = (per_ray - per_local) / per_local
    # The fastest batch of each side too: a neighbour's load only ever adds time, so the minima
    # are the least disturbed pair when the medians are not.
    best_local, best_ray = min(local) / args.batch, min(spread) / args.batch
    result = {
        "task": args.task,
        "workers": args.workers,
        "batch": args.batch,
        "repeats": args.repeats,
        "seconds_per_evaluation_local": round(per_local, 4),
        "seconds_per_evaluation_ray": round(per_ray, 4),
        "ray_overhead_per_evaluation_s": round(per_ray - per_local, 4),
        "ray_overhead_fraction": round(overhead, 4),
        "best_seconds_per_evaluation_local": round(best_local, 4),
        "best_seconds_per_evaluation_ray": round(best_ray, 4),
        "best_overhead_fraction": round((best_ray - best_local) / best_local, 4),
        "batches_local_s": [round(x, 2) for x in local],
        "batches_ray_s": [round(x, 2) for x in spread],
        "target_fraction": TARGET,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.batch} evaluations x {args.repeats}, {args.workers} workers each side, {os.cpu_count()} CPUs"
        )
        print(f"  local pool : {per_local:.3f} s per evaluation")
        print(f"  Ray cluster: {per_ray:.3f} s per evaluation")
        print(f"  overhead   : {per_ray - per_local:+.3f} s = {overhead:+.1%} (target < {TARGET:.0%})")
        print(
            f"  fastest batches: {best_local:.3f} s vs {best_ray:.3f} s per evaluation "
            f"({(best_ray - best_local) / best_local:+.1%})"
        )
    return 0 if overhead < TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
