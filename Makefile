# alert-jobs: `make run` starts the product, `make test` runs the tests.
# Everything is installed into .venv from requirements.lock (exact pins).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run` is the embedded demo: it always uses the project's own instance folder and
# never touches a DAGSTER_HOME you may have set for your own Dagster.
export DAGSTER_HOME := $(CURDIR)/.dagster_home
HOST ?= 127.0.0.1
PORT ?= 3000
DEMO_REDIS_PORT ?= 6390
SERVE_PORT ?= 8787
# Signed ack/snooze links need a secret; the demo makes one per `make run` unless you set it.
ifndef ALERT_JOBS_LINK_SECRET
export ALERT_JOBS_LINK_SECRET := $(shell $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(24))")
endif

.PHONY: install run test lint typecheck bench clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# The launcher (alert_jobs/demo/launcher.py) seeds the demo data, upgrades the timeline,
# validates the rules, starts every process and, on Ctrl-C, stops the Dagster daemon
# first (no run is launched while stopping), then the webserver, then the rest.
run: install $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/python -m alert_jobs.demo run --home $(DAGSTER_HOME) --rules alerts.yaml \
	  --host $(HOST) --port $(PORT) --serve-port $(SERVE_PORT) --redis-port $(DEMO_REDIS_PORT)

test: install
	$(BIN)/python -m pytest

# ruff and mypy see assets/ and sensors/ as alert_jobs.assets and alert_jobs.sensors
# (alert_jobs/assets and alert_jobs/sensors link to them); lint-imports checks the
# layer contracts in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy alert_jobs
	$(BIN)/lint-imports

# First the benchmarks' own tests (their quick runs, left out of `make test`'s
# 10-minute budget), then the benchmarks.
bench: install
	$(BIN)/python -m pytest -m benchmark
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .dagster_home .pytest_cache .mypy_cache .ruff_cache *.egg-info
