#!/usr/bin/env bash
# Every check docs/gpu-validation.md asks of a GPU, in one run that fits a 10-minute lease:
#   bash scripts/gpu-validation.sh [OUT_DIR]      (default: $OUT, else ./gpu-validation-out)
# Uses the machine's own python3 (torch + Triton installed there) with this checkout on
# PYTHONPATH; nothing is installed. Each step has its own time limit and its output file, so one
# failing step never hides the others. A tiny model for the discovery and trainer steps is read
# from .gpucheck/tiny-llama when present (make it on any machine with `make setup` done:
# .venv/bin/python scripts/gpu-validation-model.py .gpucheck/tiny-llama).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-$root/gpu-validation-out}}
mkdir -p "$out"
cd "$root"
py=${PYTHON:-python3}
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
unset TRITON_INTERPRET

# At most 8 files come back from a device call: every step's output goes to steps.log under
# its own header; summary.log has each step's exit status and last lines.
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit}s)" | tee -a "$out/summary.log" >>"$out/steps.log"
  local start=$SECONDS
  timeout "$limit" "$@" >"$out/step.tmp" 2>&1
  local rc=$?
  cat "$out/step.tmp" >>"$out/steps.log"
  echo "   exit $rc after $((SECONDS - start))s" | tee -a "$out/summary.log"
  tail -n 3 "$out/step.tmp" | sed 's/^/   /' >>"$out/summary.log"
  rm -f "$out/step.tmp"
}

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv
  "$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  uname -r
} >"$out/machine.log" 2>&1
cat "$out/machine.log" >>"$out/summary.log"

# 1. The GPU-marked tests: CUDA IPC inputs/outputs (as the caller's user and isolated), the
#    event bound, the completion check, CUDA C++, bench on a GPU, reference tasks.
step gpu-tests 240 "$py" -m pytest -q -m gpu -ra -p no:cacheprovider tests

# 2. Every reference task's starting submission with the real timer, one JSON verdict each.
for t in vectoradd softmax layernorm matmul trimul mla_decode; do
  step "eval-$t" 90 bash -c "$py -m kerneldisc eval $t reference_kernels/$t/submission.py --device cuda --json | tee -a $out/evals.jsonl"
done

# 3. The spread of 5 evaluations of one candidate, and trimul against the human baselines
#    (the eval JSONs above and these lines are what docs/gpu-validation.md records).
step spread-trimul 150 bash -c 'for i in 1 2 3 4 5; do
  '"$py"' -m kerneldisc eval trimul reference_kernels/trimul/submission.py --device cuda --json |
  '"$py"' -c "import json,sys; v=json.load(sys.stdin); print(v[\"status\"], v[\"runtime_us\"], v[\"reference_runtime_us\"], v[\"speedup\"])"
done'

# 4. A scripted discovery step and a trainer step on the GPU (needs the tiny model).
if [[ -d .gpucheck/tiny-llama ]]; then
  step discover-step 120 "$py" scripts/gpu-validation-model.py --discover .gpucheck/tiny-llama /tmp/gpu-validation-run
else
  echo "== discover-step skipped: no .gpucheck/tiny-llama (see the header of this script)" | tee -a "$out/summary.log"
fi
echo "done; results in $out" | tee -a "$out/summary.log"
