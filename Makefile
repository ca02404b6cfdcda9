# Quick start: `make demo` (run a real job through the service) and `make test` (the whole suite).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test lint typecheck unit fast serve bench-route bench-proxy clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (or make PY=python3)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev,local]'
	@touch $@

$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[local]'
	@touch $@

demo: $(VENV)/.installed-local
	$(BIN)/python -m app.demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy app

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# Developers: skip the real-model tests locally (CI runs everything).
fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow"

test: lint typecheck unit

serve: $(VENV)/.installed-local
	$(BIN)/swarm serve

bench-route: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/route_latency.py

bench-proxy: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/proxy_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
