# planmon: two commands do all the set-up on a fresh machine, `make demo` and `make test`.
# Everything installs from the package registries into the project: uv into .tools/, the locked
# environment (uv.lock) into .venv/. Nothing is installed by hand.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PROJECT_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
UV_VERSION   := 0.13.9
PYTHON       ?= python3.11
TOOLS        := $(PROJECT_ROOT)/.tools
UV           := $(TOOLS)/bin/uv
VENV         := $(PROJECT_ROOT)/.venv
RUN          := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

# Airflow for `make airflow`: an absolute AIRFLOW_HOME inside the project (git-ignored).
AIRFLOW_HOME_DIR := $(PROJECT_ROOT)/.airflow
AIRFLOW_PORT     ?= 8080

.PHONY: help install demo test lint typecheck unit compose-check bench airflow clean hypopg

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	@command -v $(PYTHON) >/dev/null || { echo "planmon needs $(PYTHON) on PATH (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: $(UV) pyproject.toml uv.lock hatch_build.py plugins/planmon/plans/_showplan_ops.pyx
	$(UV) sync --frozen --extra celery --compile-bytecode --python $(PYTHON)
	$(RUN)/python -m compileall -q -j 0 plugins/planmon
	@touch $@

install: $(VENV)/.installed ## install the locked environment into .venv

demo: install ## run the main job end to end on an embedded PostgreSQL (about a minute), kept for make airflow
	$(RUN)/python -m planmon.demo --home $(PROJECT_ROOT)/.planmon --airflow-home $(AIRFLOW_HOME_DIR) --dags $(PROJECT_ROOT)/dags

hypopg: ## as root: Debian's hypopg for the system PostgreSQL 15 (remediation predictions run live in the tests)
	apt-get install -y --no-install-recommends postgresql-15-hypopg

test: install lint typecheck compose-check ## install everything and run the whole suite
	$(RUN)/pytest

lint: install ## ruff (with Airflow's AIR rules) and the layering contracts (import-linter, ADR 0007)
	$(RUN)/ruff check .
	cd plugins && $(RUN)/lint-imports --config $(PROJECT_ROOT)/pyproject.toml

typecheck: install ## mypy (strict) on the planmon package
	$(RUN)/mypy

compose-check: ## validate docker-compose.yml (with .env.example's placeholders) where a compose CLI exists
	@if docker compose version >/dev/null 2>&1; then \
		docker compose --env-file .env.example -f docker-compose.yml --profile celery config -q && echo "docker compose config: ok"; \
	elif command -v docker-compose >/dev/null 2>&1; then \
		docker-compose --env-file .env.example -f docker-compose.yml --profile celery config -q && echo "docker-compose config: ok"; \
	else \
		echo "docker compose config: skipped (no 'docker compose' or 'docker-compose' CLI here); tests/test_compose.py checks the file"; \
	fi

bench: install ## every benchmark (each prints a ratio against a baseline measured in the same run); fails after all ran if any failed
	@shopt -s nullglob; scripts=(bench/[!_]*.py); [ $${#scripts[@]} -gt 0 ] || { echo "no benchmarks yet"; exit 0; }; \
	failed=(); for script in "$${scripts[@]}"; do echo "== $$script"; $(RUN)/python "$$script" || failed+=("$$script"); done; \
	if [ $${#failed[@]} -gt 0 ]; then echo "== $${#failed[@]} of $${#scripts[@]} benchmarks failed: $${failed[*]}"; exit 1; fi; \
	echo "== all $${#scripts[@]} benchmarks passed"

airflow: install ## Airflow (API on 127.0.0.1:$(AIRFLOW_PORT)) with planmon's DAGs and plugin; Ctrl-C stops it
	AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) AIRFLOW_PORT=$(AIRFLOW_PORT) scripts/airflow-local.sh

clean: ## stop and delete the demo's and make airflow's PostgreSQL servers; remove the environment, local state (.venv, .tools, .airflow, .planmon) and the compiled reader
	if [ -x $(RUN)/python ]; then $(RUN)/python -m planmon.demo.target down --delete --home $(PROJECT_ROOT)/.planmon; $(RUN)/python -m planmon.airflow.metadata down --delete --airflow-home $(AIRFLOW_HOME_DIR); fi
	rm -rf $(VENV) $(TOOLS) $(AIRFLOW_HOME_DIR) $(PROJECT_ROOT)/.planmon
	rm -f $(PROJECT_ROOT)/plugins/planmon/plans/_showplan_ops.*.so
