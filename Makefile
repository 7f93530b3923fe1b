# mailer: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock

# `make run` starts its own Redis and mail catcher unless you point it elsewhere.
PROCESSES := web worker beat bounces
ifndef MAILER_REDIS_URL
PROCESSES += redis
endif
ifndef MAILER_SMTP_HOST
PROCESSES += mail
endif

.PHONY: install lock lock-upgrade lock-check run test test-fast test-floors bench bench-million fuzz chaos lint fmt redis-server chromium axe clean

install: $(STAMP)

# Exactly the versions (and files, by hash) of requirements.lock, then mailer itself.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# requirements.lock from pyproject.toml (with the dev extra), for every platform, with
# hashes: `make lock` after changing a dependency keeps every other pin; `make
# lock-upgrade` takes the newest release of everything. Commit the result.
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra dev --universal \
  --python-version 3.11 --generate-hashes --custom-compile-command "make lock" --quiet
lock: install
	$(LOCK_COMPILE) -o $(LOCK)

lock-upgrade: install
	$(LOCK_COMPILE) --upgrade -o $(LOCK)

# Fails when pyproject.toml asks for something requirements.lock does not hold (part of
# `make lint`): the lock made anew from its own pins must come out the same.
lock-check: install
	@set -euo pipefail; scratch="$$(mktemp -d)"; trap 'rm -rf "$$scratch"' EXIT; \
	  cp $(LOCK) "$$scratch/lock"; $(LOCK_COMPILE) -o "$$scratch/lock"; \
	  diff -q $(LOCK) "$$scratch/lock" >/dev/null \
	    || { echo "requirements.lock does not match pyproject.toml: run make lock" >&2; exit 1; }

# Installs redis-server with the system's package manager when it is missing.
redis-server:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  echo "redis-server is missing; installing it..."; \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  elif command -v brew >/dev/null 2>&1; then \
	    brew install redis; \
	  elif command -v dnf >/dev/null 2>&1; then \
	    sudo dnf install -y redis; \
	  else \
	    echo "Could not install redis-server: no apt-get, brew or dnf found." >&2; \
	    echo "Install Redis 6.2 or newer yourself, or set MAILER_REDIS_URL." >&2; \
	    exit 1; \
	  fi; \
	  command -v redis-server >/dev/null 2>&1 || { echo "redis-server is still missing." >&2; exit 1; }; \
	fi

# The browser tests drive the system's Chromium (Playwright never downloads one).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "chromium is missing; installing it for the browser tests..."; \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "Could not install chromium; the browser tests will be skipped." >&2; \
	  fi; \
	fi

# A development secret lives in .env (ignored by git); production sets MAILER_SECRET_KEY.
.env:
	@echo "MAILER_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))')" > .env
	@echo "Wrote .env with a fresh development secret."

run: install redis-server .env
	@mkdir -p var/redis var/mail instance
	$(BIN)/mailer db upgrade
	@echo
	@echo "  Signup page:   http://127.0.0.1:8000/subscribe"
	@echo "  Caught mail:   http://127.0.0.1:8000/dev/mail  (files in var/mail/)"
	@echo
	@# Development mode (the /dev/mail pages) only for the processes this command starts.
	@# honcho reads no .env (`--env /dev/null`): its own parser drops the spaces of an
	@# unquoted value and lets .env override the environment; every process reads .env
	@# itself instead, as the `mailer` command does (the environment first).
	MAILER_ENV=development PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --env /dev/null $(PROCESSES)

# axe-core checks every page of the browser tests (contrast, labels, names), from npm.
AXE := tests/.node/node_modules/axe-core/axe.min.js
axe: $(AXE)
$(AXE):
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing; the accessibility checks need it" >&2; \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; fi; }
	npm install --prefix tests/.node --no-save --no-audit --no-fund --silent axe-core@4

# Everything CI runs: lint, format, types, the import graph, then every test tier.
test: install redis-server chromium axe lint test-floors
	$(BIN)/pytest

# The floors in pyproject.toml are true: the oldest release of every dependency (and of
# the dev extra), pinned, in a throwaway venv, runs the unit tier, and on SQLite with a
# Redis of their own the tests that drive a library's API most directly: the delivery
# engine's (the journal is where a redis-py floor that was not true once broke sending)
# and the feeds' (httpx, httpcore's network backend, defusedxml). Part of `make test`.
test-floors: redis-server
	@set -euo pipefail; floors="$$(mktemp -d)"; trap 'rm -rf "$$floors"' EXIT; \
	  $(PYTHON) -m venv "$$floors/venv"; \
	  $(PYTHON) tools/floors.py --extra dev > "$$floors/requirements.txt"; \
	  "$$floors/venv/bin/pip" install --quiet --disable-pip-version-check -r "$$floors/requirements.txt"; \
	  "$$floors/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -e .; \
	  "$$floors/venv/bin/pip" check; \
	  MAILER_TEST_DATABASE_URL= "$$floors/venv/bin/pytest" -q -m unit -p no:cacheprovider; \
	  MAILER_TEST_DATABASE_URL= "$$floors/venv/bin/pytest" -q -p no:cacheprovider \
	    tests/test_delivery_engine.py tests/test_feeds.py

# The inner loop: unit and integration tests on SQLite, without the slow and browser tiers.
test-fast: install redis-server
	$(BIN)/ruff check .
	MAILER_TEST_DATABASE_URL= $(BIN)/pytest -q -m "not slow and not browser"

# Benchmarks (not part of `make test`): see docs/benchmarks.md. They need PostgreSQL
# (MAILER_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/mailer_bench);
# smtp-sink, smtp-source and wrk are installed from Debian's packages when missing.
bench: install redis-server
	$(BIN)/python -m bench.run

# One digest to a million readers (about 15 minutes).
bench-million: install redis-server
	$(BIN)/python -m bench.million

lint: install lock-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var instance .pytest_cache .ruff_cache *.egg-info

# Ten thousand random and hostile requests against the stack as `make run` starts it.
fuzz: install redis-server
	$(BIN)/python -m tools.fuzz --cases 10000

# Faults a unit test cannot stage: PostgreSQL restarted mid-send, pool processes SIGKILLed
# mid-send, a second host's workers joining a send and dying (needs PostgreSQL;
# MAILER_CHAOS_DATABASE_URL). Figures: docs/reliability.md.
chaos: install redis-server
	$(BIN)/python -m tools.chaos
