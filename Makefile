# Two commands for a fresh machine (see README.md):
#   make up    create .venv, install Assay, start the local hub on http://127.0.0.1:8080
#   make test  install what the tests need and run the whole suite (what .ci/run runs)
PYTHON ?= python3
VENV   ?= .venv
UV      = $(VENV)/bin/uv
BIN     = $(VENV)/bin

.PHONY: up test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv installs ~10x faster than pip here; it lives in the venv so nothing global is touched.
$(UV): $(BIN)/python
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(BIN)/assay: $(UV) pyproject.toml
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(BIN)/assay
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -e '.[dev]'
	touch $@

up: $(BIN)/assay
	$(BIN)/assay up $(ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: $(BIN)/assay
	$(BIN)/python bench/submit_cold_start.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
