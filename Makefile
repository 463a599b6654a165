# Mycelia Ops: `make run` starts the product on the embedded default; `make test` runs the suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AXE := node_modules/axe-core/axe.min.js

.PHONY: run test lint format bench bench-history install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/run.py

# The suite runs on every core (pytest-xdist; tests/xdist_isolation.py gives each worker its own
# broker database and data folder; xdist_group keeps tests that share a costly fixture on one
# worker), then the few tests marked serial run alone. Exit code 5 of the second part means
# "no serial test selected", which is fine.
# At most 8 workers: each takes a Redis database of its own, and Redis has 16 by default.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 8 ] && n=8; echo $$n)
test: $(STAMP) $(AXE)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS); code=$$?; [ $$code -eq 0 ] || [ $$code -eq 5 ]

# axe-core for the accessibility sweep (tests/browser/test_accessibility.py); without npm the
# sweep skips (and fails under CI, where .ci/run installs it).
$(AXE): package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the accessibility sweep will skip"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/flags_bench.py

bench-history: $(STAMP)
	$(BIN)/python bench/history_bench.py

clean:
	rm -rf $(VENV) data staticfiles
