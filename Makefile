# hookhub: `make run` starts everything (embedded), `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running the stack needs (the project and the embedded broker and database), and
# the rest that the checks, the suite and the benchmarks add: a fresh `make run` does
# not wait for ruff, mypy, Chromium's driver or the providers' SDKs (docs/development.md).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
TOOLS := $(VENV)/.tools

.PHONY: run sandbox test lint typecheck check-compose bench clean install install-dev

# pip as the venv brings it (Python 3.11's builds the editable install): upgrading it
# first was a tenth of a fresh `make run`.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hookhub needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)

# uv where pip's configuration can be said to it, else pip (deploy/install.py;
# HOOKHUB_PIP=1: pip).
$(RUN_STAMP): pyproject.toml deploy/install.py | $(BIN)/python
	$(BIN)/python deploy/install.py ".[embedded]"
	@touch $(RUN_STAMP)

# dev includes what runs, so it stands for both stamps.
$(DEV_STAMP): pyproject.toml deploy/install.py | $(BIN)/python
	$(BIN)/python deploy/install.py ".[dev,embedded]"
	@touch $(RUN_STAMP) $(DEV_STAMP)

# helm and kubectl render and check deploy/chart in the tests (deploy/tools.py); `make run`
# does not need them.
$(TOOLS): $(DEV_STAMP) deploy/tools.py
	$(BIN)/python deploy/tools.py $(BIN)
	@touch $(TOOLS)

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

run: $(RUN_STAMP)
	@exec $(BIN)/hookhub run

# The same stack with every provider's stand-in at /sandbox/ (docs/sandbox.md).
sandbox: $(RUN_STAMP)
	@exec $(BIN)/hookhub run --sandbox

# pytest-xdist workers: whole modules each, the slowest first (tests/parallel.py). Three on
# two cores: the suite waits (consumer groups joining, leases, absences) as well as works,
# and a third worker fills the cores those waits leave idle (two: 12 minutes, the cores 60%
# busy; three: under 10, 75%). On four, the load reached 10-15 and tests bound by a wall
# clock failed now and then; PYTEST_WORKERS=0: one process (docs/development.md).
PYTEST_WORKERS ?= 3

# Bytecode written even where PYTHONDONTWRITEBYTECODE is set (CI images set it): every
# worker collects the whole suite, rewriting each test module's asserts (~20 s of CPU a
# worker, three at once on two cores), and a worker ahead leaves its modules compiled for
# the others and for the processes the tests start.
test: $(DEV_STAMP) $(TOOLS) lint typecheck check-compose
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -ra -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

check-compose: $(DEV_STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

bench: $(DEV_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
