# reaperlab: every target installs what it needs first, so on a fresh clone
# `make loadtest` and `make test` are the only two commands a user needs.
#
# The install is editable in "compat" mode (a path entry, not an import hook that
# every Python process of the venv would load: 1.9 MB each), and `make serve`
# compiles the server to bytecode first (as the harness does): a server that
# compiles its own source keeps the compiler's memory, and a forking parent's
# memory is what every fork copies.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install test lint loadtest serve report bench bench-tools clean-reports clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

loadtest: install
	$(PY) -m loadtest $(ARGS)

serve: install
	$(PY) -m compileall -q server
	$(PY) -m server $(ARGS)

report: install
	$(PY) -m reports reports/latest $(ARGS)

bench: install
	$(PY) -m loadtest.bench $(ARGS)

# Optional: wrk loads a server harder than Locust can on a small machine; make bench
# uses it when it is on PATH (Debian/Ubuntu package "wrk") and says which it used.
bench-tools:
	command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk

clean-reports:
	rm -rf reports/runs reports/latest reports/bench

clean: clean-reports
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
