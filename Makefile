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

.PHONY: run sandbox test collect-tests lint typecheck check-compose bench clean install install-dev

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

# pytest-xdist workers: whole modules each, in tests/parallel.py's order. Four on two
# cores: the suite waits (consumer groups joining, leases, absences) as well as works, and
# the workers fill the cores those waits leave idle (three: 10.4 minutes, the cores 79%
# busy; four: 9.6, 91%). PYTEST_WORKERS=0: one process (docs/development.md).
PYTEST_WORKERS ?= 4

# Every xdist worker collects the whole suite, and pytest rewrites each test module's
# asserts as it imports it: ~19 s of CPU a worker from a clean clone, three at once on two
# cores (~6 s once the rewritten modules are cached). So the suite is collected once
# beside mypy (a core each), with bytecode written even where PYTHONDONTWRITEBYTECODE is
# set (CI images set it), and the workers read what it wrote.
test: $(DEV_STAMP) $(TOOLS) lint check-compose
	@$(MAKE) --no-print-directory -j2 typecheck collect-tests
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -ra -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

collect-tests: $(DEV_STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest --collect-only -q -p no:cacheprovider > /dev/null

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
