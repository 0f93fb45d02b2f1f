# Tenancy: `make run` starts the embedded system, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck imports pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# Offline PayFast mode unless TENANCY_PAYFAST_MODE is set: no PayFast account needed.
run: $(VENV)/.installed
	TENANCY_PAYFAST_MODE=$${TENANCY_PAYFAST_MODE:-offline} $(BIN)/tenancy serve

test: $(VENV)/.installed-dev lint typecheck imports pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src

imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
