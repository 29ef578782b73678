"""What the evaluator itself costs on the CPU, next to `python -c "import torch"` on the same
machine, measured side by side in one run:

- one `kerneldisc eval` of a trivial correct candidate (a fresh process: fork server, judge,
  harness processes, reference timed): target at most 3x `import torch`;
- one evaluation in a batch of 20 through the Python API, as the discovery loop calls it (the
  reference timed once before, the fork server already running, each candidate still in a fresh
  process of its own): target at most 1x `import torch`;
- the handshake: what one timed call of a kernel that does nothing is charged (the harness's
  CPU time from the judge's SIGCONT to its SIGSTOP), and what the judge spends around it;
- the GPU compile check (gpu_compile.py): one evaluation of the task's starting submission (a
  Triton kernel, through the interpreter) with its kernels compiled for sm_90 (the first time,
  with an empty compile cache, and again from the cache, as a discovery meets a kernel it has
  seen) and without, alternately: target, compilation cached by specialisation adds at most
  30 % to the evaluation.

    .venv/bin/python benchmarks/eval_overhead.py [--task vectoradd] [--repeats 5] [--json]

The candidate is `torch.add`: what is measured is the evaluator's own cost (processes, checks,
timing budget), not a kernel's. The commands are run alternately, `--repeats` times each, and
medians compared, so background load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TRIVIAL = "import torch\n\n\ndef custom_kernel(data):\n    a, b = data\n    return torch.add(a, b)\n"
TARGET_CLI = 3.0
TARGET_BATCH = 1.0
TARGET_COMPILE = 0.30
BATCH = 20


def _seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def batch_seconds(task_name: str) -> float:
    """Seconds per evaluation of 20 distinct trivial candidates through the API, in this process."""
    from kerneldisc.evaluate import EvalConfig, evaluate, measure_reference
    from kerneldisc.task import load_task

    task = load_task(task_name)
    cfg = EvalConfig(device="cpu")
    reference = measure_reference(task, cfg)  # once per run, as the loop does; starts the fork server
    start = time.perf_counter()
    for i in range(BATCH):
        verdict = evaluate(task, TRIVIAL + f"# candidate {i}\n", cfg, reference=reference)
        if verdict.status != "ok":
            raise SystemExit(f"the trivial candidate did not pass on {task_name}: {verdict.message}")
    return (time.perf_counter() - start) / BATCH


def compile_overhead(task_name: str, repeats: int) -> dict[str, float]:
    """Median seconds of one evaluation of the task's starting submission with its Triton kernels
    compiled for sm_90 and without, run alternately through the API (reference given)."""
    from kerneldisc.evaluate import EvalConfig, evaluate, measure_reference
    from kerneldisc.task import load_task

    task = load_task(task_name)
    source = task.submission_path.read_text()
    reference = measure_reference(task, EvalConfig(device="cpu"))
    times: dict[str, list[float]] = {"with": [], "cached": [], "without": []}
    for i in range(repeats):
        for label, targets in (("with", ("sm_90",)), ("cached", ("sm_90",)), ("without", ())):
            if label == "with":  # an empty compile cache: this kernel compiled for the first time
                os.environ["KERNELDISC_CACHE"] = tempfile.mkdtemp(prefix="kerneldisc-bench-cache-")
            start = time.perf_counter()
            verdict = evaluate(task, source + f"# {label} {i}\n", EvalConfig(device="cpu", gpu_compile_targets=targets),
                               reference=reference)  # fmt: skip
            times[label].append(time.perf_counter() - start)
            if verdict.status != "ok" or bool(verdict.gpu_compile) != (label != "without"):
                raise SystemExit(f"the submission of {task_name} did not pass as expected: {verdict.message}")
    with_s, cached_s, without_s = (statistics.median(times[k]) for k in ("with", "cached", "without"))
    return {"eval_submission_s": without_s, "eval_submission_compiled_s": with_s,
            "eval_submission_compile_cached_s": cached_s,
            "compile_fraction": (with_s - without_s) / without_s,
            "compile_cached_fraction": (cached_s - without_s) / without_s}  # fmt: skip


def handshake_us(calls: int = 400) -> dict[str, float]:
    """Median charged CPU µs and judge wall µs per call of a kernel that computes nothing."""
    import torch

    from kerneldisc.evaluate.arena import CpuArena
    from kerneldisc.evaluate.controller import HarnessProcess
    from kerneldisc.evaluate.harness import HarnessSpec, run
    from kerneldisc.evaluate.sandbox import Limits, children

    result = torch.zeros(4096)
    arena = CpuArena()
    with tempfile.TemporaryDirectory() as work:
        spec = HarnessSpec(role="reference", device="cpu", core=None, limits=Limits(), work_dir=work,
                           entry=lambda data: result)  # fmt: skip
        proc = HarnessProcess.fork(lambda: run(spec), arena.fd, 4000, 600.0, "bench", read_memory=True)
        proc.others = frozenset(children(os.getpid())) - {proc.pid}  # the fork server, started above
        proc.start_tails()
        proc.wait_ready()
        layout, spans = arena.layout((torch.randn(4096), torch.randn(4096)))
        proc.send({"op": "layout", "layout": layout})
        charged, judge = [], []
        for _ in range(calls):
            start = time.perf_counter()
            _, cpu_ns, _ = proc.call({"op": "call"}, lambda: arena.fill(layout, spans))
            judge.append((time.perf_counter() - start) * 1e6)
            charged.append(cpu_ns / 1e3)
        proc.close()
    arena.close()
    return {"charged_us": statistics.median(charged), "judge_us": statistics.median(judge)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task", default="vectoradd", help="a task whose inputs are (a, b) (default vectoradd)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / "trivial.py"
        candidate.write_text(TRIVIAL)
        eval_cmd = [
            sys.executable,
            "-m",
            "kerneldisc",
            "eval",
            args.task,
            str(candidate),
            "--device",
            "cpu",
            "--json",
        ]
        verdict = json.loads(subprocess.run(eval_cmd, capture_output=True, text=True, cwd=ROOT).stdout)
        if verdict["status"] != "ok":
            raise SystemExit(f"the trivial candidate did not pass on {args.task}: {verdict['message']}")
        torch_cmd = [sys.executable, "-c", "import torch"]
        evals, imports, batches = [], [], []
        batch_cmd = [sys.executable, __file__, "--task", args.task, "--batch-only"]
        for _ in range(args.repeats):
            imports.append(_seconds(torch_cmd))
            evals.append(_seconds(eval_cmd))
            done = subprocess.run(batch_cmd, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"the batch failed: {done.stderr.strip()[-500:]}")
            batches.append(float(done.stdout.strip()))
    result = {
        "task": args.task,
        "repeats": args.repeats,
        "import_torch_s": statistics.median(imports),
        "eval_cli_s": statistics.median(evals),
        "eval_in_batch_s": statistics.median(batches),
        "batch": BATCH,
        **handshake_us(),
        **compile_overhead(args.task, args.repeats),
    }
    result["cli_ratio"] = result["eval_cli_s"] / result["import_torch_s"]
    result["batch_ratio"] = result["eval_in_batch_s"] / result["import_torch_s"]
    result["target_cli_ratio"], result["target_batch_ratio"] = TARGET_CLI, TARGET_BATCH
    result["target_compile_fraction"] = TARGET_COMPILE
    if args.json:
        print(json.dumps(result))
        return 0
    word = lambda ratio, target: "within" if ratio <= target else "ABOVE"  # noqa: E731
    print(
        f"python -c 'import torch':                      {result['import_torch_s']:.2f} s (median of {args.repeats})"
    )
    print(f"kerneldisc eval ({args.task}, trivial, cpu):      {result['eval_cli_s']:.2f} s = "
          f"{result['cli_ratio']:.2f}x ({word(result['cli_ratio'], TARGET_CLI)} the {TARGET_CLI:.0f}x target)")  # fmt: skip
    print(f"one evaluation in a batch of {BATCH} (Python API): {result['eval_in_batch_s']:.2f} s = "
          f"{result['batch_ratio']:.2f}x ({word(result['batch_ratio'], TARGET_BATCH)} the {TARGET_BATCH:.0f}x target)")  # fmt: skip
    print(f"handshake per timed call: {result['charged_us']:.1f} µs charged (harness CPU, SIGCONT to SIGSTOP), "
          f"{result['judge_us']:.1f} µs of the judge's wall time")  # fmt: skip
    fraction, cached = result["compile_fraction"], result["compile_cached_fraction"]
    print(f"starting submission, one evaluation: {result['eval_submission_s']:.2f} s; with its kernels compiled "
          f"for sm_90 the first time: {result['eval_submission_compiled_s']:.2f} s = +{fraction:.0%}; from the "
          f"judge's compile cache: {result['eval_submission_compile_cached_s']:.2f} s = +{cached:.0%} "
          f"({word(cached, TARGET_COMPILE)} the {TARGET_COMPILE:.0%} target)")  # fmt: skip
    return 0


if __name__ == "__main__":
    if "--compile-only" in sys.argv:
        print(json.dumps(compile_overhead(sys.argv[sys.argv.index("--task") + 1], 7)))
        raise SystemExit(0)
    if "--batch-only" in sys.argv:
        task = sys.argv[sys.argv.index("--task") + 1] if "--task" in sys.argv else "vectoradd"
        print(batch_seconds(task))
        raise SystemExit(0)
    raise SystemExit(main())
