# The README's two commands are `make demo` and `make test`; both set up .venv first.
PY := .venv/bin/python
export TRITON_INTERPRET ?= $(if $(shell command -v nvidia-smi 2>/dev/null),0,1)

.PHONY: setup demo test lint format bench

setup:
	@bash scripts/setup.sh

# 4 steps x 2 groups x 6 replies: the embedded model's correct fraction rises from step to step
# (6 to 9 minutes on 2 CPU cores; see results/README.md)
demo: setup
	$(PY) -m kerneldisc discover vectoradd --steps 4 --groups 2 --group-size 6

test: setup
	@bash scripts/setup-test-extras.sh
	$(PY) -m ruff check kerneldisc tests benchmarks
	$(PY) -m ruff format --check kerneldisc tests benchmarks
	$(PY) -m pytest -q -ra

lint: setup
	$(PY) -m ruff check kerneldisc tests benchmarks

format: setup
	$(PY) -m ruff format kerneldisc tests benchmarks
	$(PY) -m ruff check --fix kerneldisc tests benchmarks
