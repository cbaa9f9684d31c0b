# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1

.PHONY: run demo install install-test test test-embedded test-scaled assets clean

# Running needs the package only; testing also needs the test extra (browsers' driver, SDKs).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Install and start Spyglass on embedded storage (SQLite + DuckDB in ./spyglass-data).
run: install
	$(BIN)/spyglass serve --host $(HOST) --port $(PORT)

## Start Spyglass with a demo organization fed live by a demo app (real sentry-sdk).
demo: install
	$(BIN)/spyglass demo --host $(HOST) --port $(PORT)

## Run the whole test suite on both storage stacks.
test: install-test test-embedded test-scaled

test-embedded: install-test
	SPYGLASS_TEST_STACK=embedded $(BIN)/python -m pytest -q -n 2 --dist loadfile

## Postgres (SPYGLASS_TEST_DATABASE_URL) + ClickHouse SQL on chDB (or SPYGLASS_TEST_CLICKHOUSE_URL).
test-scaled: install-test
	SPYGLASS_TEST_STACK=scaled $(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not browser" --ignore=tests/insights

## Re-copy pinned front-end packages from npm into the package (maintainers only).
assets:
	$(BIN)/python scripts/vendor_assets.py

clean:
	rm -rf $(VENV) build *.egg-info test-artifacts
