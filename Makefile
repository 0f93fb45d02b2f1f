# Tenancy: `make run` starts the embedded system, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck imports pytest soak bench clean lambda-package

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
	$(BIN)/ruff check src tests soak bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src

imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

# The soak test (soak/run.py): the real server and workers, N ITNs (~30% duplicates, ~10% invalid),
# workers and the server killed with SIGKILL, faults injected at a rate, then `tenancy audit`; its
# last line is the summary. BACKEND=local (SQLite, SMTP) or aws (moto's server). `make soak N=300`.
N ?= 2000
SEED ?= 1
SOAK_WORKERS ?= 2
BACKEND ?= local
soak: $(VENV)/.installed-dev
	$(BIN)/python soak/run.py --backend $(BACKEND) --n $(N) --seed $(SEED) --workers $(SOAK_WORKERS)

# The benchmarks (bench/run.py, issue 6): each against a floor measured in the same run; writes
# bench/results/latest.json and latest.md. `make test` runs them once at --size tiny (tests/unit/test_bench_smoke.py).
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py --size full

# The code deploy/template.yaml deploys (CodeUri: build/lambda): the package and its dependencies
# as wheels for the Lambda runtime (Linux x86_64, CPython 3.11), whatever this machine is.
lambda-package: | $(BIN)/python
	rm -rf build/lambda build/wheels build/lib
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir build/wheels .
	$(BIN)/pip install --quiet --target build/lambda --platform manylinux2014_x86_64 --implementation cp \
		--python-version 3.11 --only-binary=:all: build/wheels/tenancy-*.whl

clean:
	rm -rf $(VENV) var build .mypy_cache .ruff_cache .pytest_cache
