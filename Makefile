# reaperlab: every target installs what it needs first, so on a fresh clone
# `make loadtest` and `make test` are the only two commands a user needs.
#
# The install is exact: uv installs the versions pinned in uv.lock (`uv sync
# --locked` fails rather than resolve anew when pyproject.toml and the lock
# disagree; `make lock` brings the lock up to date). uv itself comes from PyPI,
# pinned here, into a tools venv of its own, so python3 is all a machine needs.
# The project is installed editable as a plain path entry (pyproject.toml says
# why), and `make serve` compiles the server to bytecode first (as the harness
# does): a server that compiles its own source keeps the compiler's memory, and a
# forking parent's memory is what every fork copies.
#
# The install compiles every installed package to bytecode once (`--compile-bytecode`):
# uv writes none by default, and where PYTHONDONTWRITEBYTECODE is set (CI images,
# containers) Python never caches any, so every process, each test run and each
# `python -m` child, compiled matplotlib, numpy and Locust anew (3 s for matplotlib
# alone, a sixth of `make test-fast`). The Makefile is a prerequisite of the stamp
# so that a change of the install recipe reaches venvs installed before it.

PYTHON ?= python3
VENV   ?= .venv
TOOLS  ?= .venv-tools
UV_VERSION := 0.13.8
UV     := $(TOOLS)/bin/uv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

# uv uses this machine's python3 and never downloads an interpreter of its own.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install lock test test-fast lint loadtest serve report bench bench-tools docs clean-reports clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -qq uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock Makefile | $(UV)
	$(UV) sync --locked --compile-bytecode --quiet --python $(PYTHON)
	touch $(STAMP)

install: $(STAMP)

# Re-resolve after an edit of pyproject.toml, keeping every pin it allows;
# `make lock ARGS=--upgrade` takes the newest releases pyproject.toml allows.
lock: | $(UV)
	$(UV) lock --python $(PYTHON) $(ARGS)

# mypy reads its settings (the packages and tests, the strictness) from pyproject.toml.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

# Everything but the tests that take seconds each (harness, Locust and bench runs, `python -m`
# entry points, timeouts, stress loads: marked slow), spread over up to 4 processes
# (pytest-xdist): most of what is left is matplotlib drawing reports, which one core
# cannot hurry. `make test` runs everything, one test at a time, and is what CI runs.
test-fast: install
	$(PY) -m pytest -m "not slow" -q --numprocesses=auto --maxprocesses=4

loadtest: install
	$(PY) -m loadtest $(ARGS)

serve: install
	$(PY) -m compileall -q server
	$(PY) -m server $(ARGS)

report: install
	$(PY) -m reports reports/latest $(ARGS)

bench: install
	$(PY) -m bench $(ARGS)

# docs/reference.md's option lists, made anew from each command's --help (a test fails
# when they are stale).
docs: install
	$(PY) -m reaperlab.reference

# Optional: wrk loads a server harder than Locust can on a small machine; make bench
# uses it when it is on PATH (Debian/Ubuntu package "wrk") and says which it used.
bench-tools:
	command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk

clean-reports:
	rm -rf reports/runs reports/latest reports/bench

clean: clean-reports
	rm -rf $(VENV) $(TOOLS) *.egg-info .pytest_cache .ruff_cache .mypy_cache
