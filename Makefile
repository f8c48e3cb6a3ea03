# Every target sets itself up: a .venv with the package and the extras it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-10)
HOST   ?= 127.0.0.1
PORT   ?= 8484

.PHONY: run test lint bench services browser clean help

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' Makefile | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

run: $(STAMP)  ## start the collector on 127.0.0.1 with demo data in ./rlhf.db
	$(VENV)/bin/rlhfkit demo --db sqlite:///rlhf.db --if-empty
	$(VENV)/bin/rlhfkit serve --db sqlite:///rlhf.db --host $(HOST) --port $(PORT) --create-key demo

services:  ## make sure the local PostgreSQL is up
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true

browser:  ## install Debian's chromium for the dashboard tests when missing
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)

lint: $(STAMP)  ## ruff and mypy --strict
	$(PY) -m ruff check rlhfkit tests bench
	$(PY) -m mypy

test: $(STAMP) services browser  ## lint (ruff, mypy --strict), then the whole test suite
	$(PY) -m ruff check rlhfkit tests bench
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP) services  ## benchmarks; figures go to BENCHMARKS.md by hand
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench

clean:
	rm -rf $(VENV) rlhf.db rlhf.db-* test-output
