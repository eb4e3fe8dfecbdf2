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
# The embedded API server gets two minutes to start on a busy 2-core machine (Prefect's default is 20 s).
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120

DEMO_DIR ?= out/demo

.PHONY: install run test bench bench-national ui clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

# The environment, then the Data Docs' styles, scripts and fonts from the npm registry's releases pinned (with their
# SHA-512) in schemas/reference/data-docs-assets.toml, so the pages open offline.
# Installed packages are compiled to bytecode here, once: where the environment forbids writing .pyc files
# (PYTHONDONTWRITEBYTECODE), every command would otherwise compile pandas, Prefect and GX again (about 5 s each).
# Only here: with UV_COMPILE_BYTECODE set, every `uv run` would check all 10,000 files again (0.5-2 s).
.venv/.synced: pyproject.toml uv.lock schemas/reference/data-docs-assets.toml | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	$(UV) run --frozen python -m pipelines.assurance.docs_assets
	touch $@

install: .venv/.synced

# The demo's pseudonymisation keys: random, made once, kept beside the demo output (never in the repository).
$(DEMO_DIR)/keys.env:
	mkdir -p $(DEMO_DIR)
	umask 077; $(PYTHON) -c "import secrets; print('LARETURNS_KEY_HEALTH=' + secrets.token_hex(32))" > $@

# The demo ledger's signing key (Ed25519, 32 random bytes as hex), made once; its public key goes to the auditor
# as ledger_public_key.pem (lareturns audit --public-key).
$(DEMO_DIR)/ledger_key.env:
	mkdir -p $(DEMO_DIR)
	umask 077; $(PYTHON) -c "import secrets; print('LARETURNS_LEDGER_KEY=' + secrets.token_hex(32))" > $@

run: install $(DEMO_DIR)/keys.env $(DEMO_DIR)/ledger_key.env
	$(UV) run --frozen lareturns generate --out $(DEMO_DIR)/input --scale county --seed 1 --faults 0.02
	set -a; . $(DEMO_DIR)/keys.env; . $(DEMO_DIR)/ledger_key.env; set +a; \
	$(UV) run --frozen lareturns ledger-key > $(DEMO_DIR)/ledger_public_key.pem && \
	$(UV) run --frozen lareturns run census --input $(DEMO_DIR)/input --out $(DEMO_DIR)/census --period 2026-spring

test: install
	$(UV) run --frozen pytest -q

bench: install
	$(UV) run --frozen python -m bench

# Every LA of `generate --scale national` on a local Dask cluster of two workers (BENCH_NATIONAL_LAS=N for N LAs
# spread by size, BENCH_WORKERS for more workers).
bench-national: install
	$(UV) run --frozen python -m bench national

# The Prefect server and UI at http://127.0.0.1:4200 (this machine only); `lareturns serve` registers the scheduled
# returns with it when PREFECT_API_URL=http://127.0.0.1:4200/api. Ctrl-C stops it.
ui: install
	$(UV) run --frozen prefect server start --host 127.0.0.1 --port 4200

clean:
	rm -rf out .venv .tools .pytest_cache
