# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test-slow console-verify run test install lint types pytest bench bench-export bench-knowledge bench-mcp bench-memory faults faults-topology clean console console-check test-browser bench-console

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled here, once: with PYTHONDONTWRITEBYTECODE set (as on many CI machines)
# Python never caches it, and every process (the server, SecantusDB, each test worker and child)
# would compile its ~1,600 modules again at start: ≈ 3 s of CPU each.
install: $(UV)
	$(UV) sync --locked --all-extras --quiet --compile-bytecode
	$(BIN)/python -m compileall -q src tests tools > /dev/null

run: install
	$(BIN)/employeevirtual serve

lint: install
	$(BIN)/ruff check src tests tools
	$(BIN)/ruff format --check src tests tools
	$(BIN)/lint-imports --no-cache

types: install
	$(BIN)/mypy

# Two workers (pytest-xdist): most tests wait on stores and child processes, so two keep both
# cores busy. PYTEST_WORKERS=0 runs in one process. The 25 slowest tests are listed at the end.
PYTEST_WORKERS ?= 2
pytest: install
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=25

test: lint types console-verify pytest

# The long runs marked @pytest.mark.slow (each has a short version inside `make test`); the last
# -m wins over pyproject's default -m 'not slow'.
test-slow: install
	$(BIN)/pytest -q -m slow

# The committed console build must equal a fresh build from its sources and lock file. Needs
# Node and npm; without them (a machine with only Python) the unit test on the sources' hash
# still runs inside pytest.
console-verify:
	@if command -v $(NPM) >/dev/null 2>&1; then $(MAKE) --no-print-directory console-check; \
	else echo "npm not found: console build not rebuilt (tests/unit/test_console_build.py checks its source hash)"; fi

# The long fault-injection run (the short one is part of `make pytest`). PostgreSQL when
# EV_TEST_POSTGRES_URL is set, SQLite otherwise.
faults: install
	$(BIN)/python -m tools.faults --long

# Issue 17's several-hosts topology, long run: 2 API processes + 1 worker, PostgreSQL, Redis,
# SecantusDB; API processes SIGKILLed and restarted under the fault workload. Needs
# EV_TEST_POSTGRES_URL and EV_TEST_REDIS_URL (the short run is part of `make pytest`).
faults-topology: install
	$(BIN)/python -m tools.faults.topology --long

# Benchmark (see README): the stores the EV_* settings name; results in bench-results/.
# BENCH_ARGS=--quick for a smoke run; PostgreSQL: EV_DATABASE_URL=... EV_DATABASE_SCHEMA=bench
# BENCH_ARGS=--drop-schema.
bench: install
	$(BIN)/python -m tools.bench $(BENCH_ARGS)
	$(BIN)/python -m tools.bench.analytics $(BENCH_ARGS)
	$(BIN)/python -m tools.bench.knowledge $(KNOWLEDGE_BENCH_ARGS)
	$(BIN)/python -m tools.bench.export
	$(BIN)/python -m tools.bench.mcp $(BENCH_ARGS)
	$(BIN)/python -m tools.bench.team $(TEAM_BENCH_ARGS)
	$(BIN)/python -m tools.bench.memory $(MEMORY_BENCH_ARGS)

# Knowledge retrieval alone: quality on the evaluation set, engine speed at 1,000 and 100,000
# chunks, ANN recall, added turn latency. KNOWLEDGE_BENCH_ARGS=--quick for a smoke run.
bench-knowledge: install
	$(BIN)/python -m tools.bench.knowledge $(KNOWLEDGE_BENCH_ARGS)

# The export's memory at 1,000 and 100,000 messages alone (part of `make bench`).
bench-export: install
	$(BIN)/python -m tools.bench.export

# Memory alone: turn latency and round trips at 10 and 10,000 messages with memory on, the
# context sent to the model, the background summary's cost. MEMORY_BENCH_ARGS=--quick: 30 turns.
bench-memory: install
	$(BIN)/python -m tools.bench.memory $(MEMORY_BENCH_ARGS)

# The web console (console/: TypeScript + Preact + Vite). Its build is committed in
# src/employeevirtual/console/static, so `make run`/`make test` need no Node. After editing
# console/, rebuild it with `make console` (Node 20 + npm) and commit the result.
NPM ?= npm
console:
	cd console && $(NPM) ci --no-audit --no-fund --loglevel=error && $(NPM) run build

# CI: a fresh build from the lock file must equal the committed one, file by file.
console-check:
	rm -rf .console-check
	cd console && $(NPM) ci --no-audit --no-fund --loglevel=error \
		&& CONSOLE_OUT_DIR=../.console-check $(NPM) run build >/dev/null
	diff -r src/employeevirtual/console/static .console-check \
		|| (echo "the committed console build is stale: run make console and commit it"; exit 1)
	rm -rf .console-check

# The browser suite (Debian's chromium; .ci/run installs it): part of `make test` when
# EV_TEST_BROWSER=1, on its own here.
test-browser: install
	EV_TEST_BROWSER=1 $(BIN)/pytest -q tests/browser

# The console in a browser: first paint, interactive chat, a 10,000- against a 10-message
# conversation, the JavaScript shipped.
bench-console: install
	$(BIN)/python -m tools.console_bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) data .console-check

# What a local MCP tool call adds to a turn (part of `make bench`; --quick for a smoke run).
bench-mcp: install
	$(BIN)/python -m tools.bench.mcp $(BENCH_ARGS)
