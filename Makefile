# reaperlab: every target installs what it needs first, so on a fresh clone
# `make loadtest` and `make test` are the only two commands a user needs.
#
# The install is editable in "compat" mode (a path entry, not an import hook that
# every Python process of the venv would load), and the server is compiled to
# bytecode ahead: a server that compiles its source at start keeps the compiler's
# memory, and a forking parent's memory is what every fork copies.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install test lint loadtest serve report bench clean-reports clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	$(PY) -m compileall -q server
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
	$(PY) -m server $(ARGS)

report: install
	$(PY) -m reports reports/latest $(ARGS)

bench: install
	$(PY) -m loadtest.bench $(ARGS)

clean-reports:
	rm -rf reports/runs reports/latest reports/bench

clean: clean-reports
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
