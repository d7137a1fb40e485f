# Two commands for a fresh machine (see README.md):
#   make demo  create .venv, install Assay, start the local hub and evaluate a bundled local model on it
#   make test  install what the tests need and run the whole suite (what .ci/run runs)
# and `make up` for the hub alone.
PYTHON ?= python3
VENV   ?= .venv
UV      = $(VENV)/bin/uv
BIN     = $(VENV)/bin

.PHONY: up demo test lint adapter-envs bench clean

# Installed modules are compiled to bytecode once, at install: uv does not by default, and where
# PYTHONDONTWRITEBYTECODE is set (this project's CI machines) every process compiled each module it imported
# again, which was half of the hub's start-up (docs/performance.md, Start-up). Assay's own modules too (below).
export UV_COMPILE_BYTECODE := 1

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv installs ~10x faster than pip here; it lives in the venv so nothing global is touched.
$(UV): $(BIN)/python
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(BIN)/assay: $(UV) pyproject.toml
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e .
	$(BIN)/python -m compileall -q assay functions adapters >/dev/null
	touch $@

$(VENV)/.demo: $(BIN)/assay
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.dev: $(BIN)/assay
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e '.[dev]'
	touch $@

up: $(BIN)/assay
	$(BIN)/assay up $(ARGS)

demo: $(VENV)/.demo
	$(BIN)/assay demo $(ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Each built-in adapter's framework gets its own environment, built once per requirements hash into
# ASSAY_ADAPTER_ENVS (default ~/.cache/assay/adapter-envs) before the tests that run them.
adapter-envs: $(VENV)/.dev
	$(BIN)/assay-adapter --build $$(ls adapters/*/requirements.txt | cut -d/ -f2)

test: lint adapter-envs
	$(BIN)/pytest

# The quick bench; the others (orchestration, list_scale, warm_start, trace_one, cold_start, function_cold_start,
# rerun_cache) take longer and are run one by one as docs/performance.md shows. The benches use the dev extra
# (psutil, the SDK).
bench: $(VENV)/.dev
	$(BIN)/python bench/submit_cold_start.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
