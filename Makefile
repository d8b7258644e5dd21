# hookhub: `make run` starts everything (embedded), `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := $(VENV)/.tools

.PHONY: run sandbox test lint typecheck check-compose bench clean install

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hookhub needs Python 3.11+")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,embedded]"
	@touch $(STAMP)

# helm and kubectl render and check deploy/chart in the tests (deploy/tools.py); `make run`
# does not need them.
$(TOOLS): $(STAMP) deploy/tools.py
	$(BIN)/python deploy/tools.py $(BIN)
	@touch $(TOOLS)

install: $(STAMP)

run: $(STAMP)
	@exec $(BIN)/hookhub run

# The same stack with every provider's stand-in at /sandbox/ (docs/sandbox.md).
sandbox: $(STAMP)
	@exec $(BIN)/hookhub run --sandbox

# pytest-xdist workers: whole modules each, the slowest first (tests/parallel.py). The
# suite waits on its services far more than it computes (two workers keep a third of two
# cores busy), so four on two cores finish sooner than two; PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 4

test: $(STAMP) $(TOOLS) lint typecheck check-compose
	$(BIN)/python -m pytest -q -ra -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check-compose: $(STAMP)
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
