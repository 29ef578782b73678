"""Seconds per `kerneldisc eval` of a trivial correct candidate on the CPU, next to
`python -c "import torch"` on the same machine, as a ratio (target: at most 3x).

    .venv/bin/python benchmarks/eval_overhead.py [--task vectoradd] [--repeats 5] [--json]

Both commands are run alternately, `--repeats` times each, and the medians are compared,
so background load hits both alike. The candidate is `torch.add`: what is measured is the
evaluator's own cost (processes, imports, checks, timing budget), not a kernel's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL = "import torch\n\n\ndef custom_kernel(data):\n    a, b = data\n    return torch.add(a, b)\n"
TARGET_RATIO = 3.0


def _seconds(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


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
        evals, imports = [], []
        for _ in range(args.repeats):
            imports.append(_seconds(torch_cmd))
            evals.append(_seconds(eval_cmd))
    result = {
        "task": args.task,
        "repeats": args.repeats,
        "eval_s": statistics.median(evals),
        "import_torch_s": statistics.median(imports),
    }
    result["ratio"] = result["eval_s"] / result["import_torch_s"]
    result["target_ratio"] = TARGET_RATIO
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"kerneldisc eval ({args.task}, trivial candidate, cpu): {result['eval_s']:.2f} s (median of {args.repeats})"
        )
        print(f"python -c 'import torch':                 {result['import_torch_s']:.2f} s")
        verdict_word = "within" if result["ratio"] <= TARGET_RATIO else "ABOVE"
        print(f"ratio: {result['ratio']:.2f}x ({verdict_word} the {TARGET_RATIO:.0f}x target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
