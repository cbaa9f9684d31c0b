# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1

.PHONY: run demo install test test-embedded test-scaled assets clean

$(BIN)/spyglass: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/spyglass

## Install and start Spyglass on embedded storage (SQLite + DuckDB in ./spyglass-data).
run: install
	$(BIN)/spyglass serve --host $(HOST) --port $(PORT)

## Start Spyglass with a demo organization fed live by a demo app (real sentry-sdk).
demo: install
	$(BIN)/spyglass demo --host $(HOST) --port $(PORT)

## Run the whole test suite on both storage stacks.
test: install test-embedded test-scaled

test-embedded: install
	SPYGLASS_TEST_STACK=embedded $(BIN)/python -m pytest -q -n 2 --dist loadfile

## Postgres (SPYGLASS_TEST_DATABASE_URL) + ClickHouse SQL on chDB (or SPYGLASS_TEST_CLICKHOUSE_URL).
test-scaled: install
	SPYGLASS_TEST_STACK=scaled $(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not browser" --ignore=tests/insights

## Re-copy pinned front-end packages from npm into the package (maintainers only).
assets:
	$(BIN)/python scripts/vendor_assets.py

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
