# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install lint types pytest bench faults clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --locked --all-extras --quiet

run: install
	$(BIN)/employeevirtual serve

lint: install
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools
	$(BIN)/lint-imports --no-cache

types: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

test: lint types pytest

# The long fault-injection run (the short one is part of `make pytest`). PostgreSQL when
# EV_TEST_POSTGRES_URL is set, SQLite otherwise.
faults: install
	$(BIN)/python -m tools.faults --long

# Benchmark (see README): the stores the EV_* settings name; results in bench-results/.
# BENCH_ARGS=--quick for a smoke run; PostgreSQL: EV_DATABASE_URL=... EV_DATABASE_SCHEMA=bench
# BENCH_ARGS=--drop-schema.
bench: install
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) data
