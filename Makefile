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

test: $(STAMP) $(AXE)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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
