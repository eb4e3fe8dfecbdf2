# Two set-up commands: `make run` (the demo) and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# Prefect stays quiet and offline, and never hashes big frames for its task cache.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_TASKS_DEFAULT_NO_CACHE := true

DEMO_DIR ?= out/demo

.PHONY: install run test bench clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

install: .venv/.synced

run: install
	$(UV) run --frozen lareturns generate --out $(DEMO_DIR)/input --scale county --seed 1 --faults 0.02
	$(UV) run --frozen lareturns run --input $(DEMO_DIR)/input --out $(DEMO_DIR)/census --period 2026-spring

test: install
	$(UV) run --frozen pytest -q

bench: install
	$(UV) run --frozen python -m bench

clean:
	rm -rf out .venv .tools .pytest_cache
