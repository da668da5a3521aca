# The README's two commands: `make demo` and `make test`. Everything they need is installed
# from scratch here: Debian packages (apt-get), Python packages (pip, cached), Go modules.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PY
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
APT_PACKAGES := postgresql prometheus chromium

.PHONY: demo test install system-deps lint unit benchmarks constraints clean

include tests/cluster/cluster.mk

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip's cache keeps the pinned torch wheel: only the first install downloads it.
# `dev` is every role (`all`: the local target, validation, serving, the controller) plus the test tools,
# at the versions the suite passed with (constraints.txt; README "Install by role").
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# PostgreSQL and Prometheus for the integration tests (real servers, started by the tests); chromium for the dashboard browser tests.
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing Debian packages: $(APT_PACKAGES)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

demo: install
	$(PY) -m controlplane.demo

test: system-deps install cluster-build lint
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

benchmarks: install
	$(PY) benchmarks/validators.py
	$(PY) benchmarks/rollback_latency.py
	$(PY) benchmarks/controller.py
	$(PY) benchmarks/fail_fast.py
	$(PY) benchmarks/dashboard.py

# After changing a pin and passing `make test`: the versions of this environment become the lock.
constraints: install
	$(PY) .ci/constraints.py > constraints.txt

clean:
	rm -rf .controlplane .pytest_cache .ruff_cache
