# Every target creates (or reuses) .venv itself, so a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Studio's kernel versions (SageMaker Distribution) of the packages we share with it; written with pyproject.toml's
# pins and environment.yml by tools/kernel_env.py from constraints/sagemaker-distribution.toml
CONSTRAINTS := constraints/kernel.txt

.PHONY: setup test lint unit bench workshop labs labs-check lab kernel-env emulator-start emulator-stop clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/python -m pytest -q --durations=30

test: lint unit

workshop: $(STAMP)
	$(BIN)/python tools/run_workshop.py $(WORKSHOP_ARGS)

labs: $(STAMP)
	$(BIN)/python tools/make_labs.py

labs-check: $(STAMP)
	$(BIN)/python tools/make_labs.py --check

kernel-env:
	$(PYTHON) tools/kernel_env.py

# JupyterLab refuses to run as root (containers, Studio-like images) unless told to: `make lab LAB_ALLOW_ROOT=1`.
LAB_ALLOW_ROOT ?=
LAB_ARGS ?=

lab: $(STAMP)
	@if [ "$$(id -u)" = 0 ] && [ -z "$(LAB_ALLOW_ROOT)" ]; then \
	  echo "make lab: you are root, and JupyterLab refuses to run as root. If this is a container or a"; \
	  echo "single-user machine where that is fine, run:  make lab LAB_ALLOW_ROOT=1"; exit 2; fi
	@echo "starting the local SageMaker emulator, then JupyterLab on labs/ (Ctrl-C stops JupyterLab)…"
	$(BIN)/sagemaker-emulator start >/dev/null && eval "$$($(BIN)/sagemaker-emulator env)" && \
	  $(BIN)/jupyter lab $(if $(LAB_ALLOW_ROOT),--allow-root) $(LAB_ARGS) labs/

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

emulator-start: $(STAMP)
	$(BIN)/sagemaker-emulator start

emulator-stop: $(STAMP)
	$(BIN)/sagemaker-emulator stop

clean:
	rm -rf build .pytest_cache .ruff_cache solutions/work labs/work
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
