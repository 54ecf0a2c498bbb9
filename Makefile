# Entry points (`make help` lists them): `make run` serves the API, `make test` runs the suite.
# Each creates .venv and installs what it needs on first use (run: the service only; test,
# fuzz, lint: the service plus the test tools) and again whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# pytest-xdist worker processes for `make test` (0 = run in one process).
TEST_WORKERS ?= 2

SPECTRAL := tools/spectral/node_modules/.bin/spectral

.PHONY: help run test fuzz scale lint openapi clean

help:
	@echo "make run    serve the API on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (HOST, PORT; JSON logs)"
	@echo "make test   the test suite without the fuzz run (TEST_WORKERS=$(TEST_WORKERS) processes)"
	@echo "make fuzz   the whole-API Schemathesis run (about 2 minutes)"
	@echo "make scale  counted work of the hot requests at N and 8N leads (tests/test_scale.py)"
	@echo "make lint   ruff check, ruff format --check, mypy, Spectral on the OpenAPI document"
	@echo "make openapi  write the OpenAPI document as served to build/openapi.json"
	@echo "make clean  remove .venv, build and tools/spectral/node_modules (never .data)"
	@echo "CI (.ci/run) runs lint, fuzz and test."

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python -m service.serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: $(TEST_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS)

fuzz: $(TEST_STAMP)
	$(BIN)/pytest -m fuzz

scale: $(TEST_STAMP)
	$(BIN)/pytest -m scale -s

# Spectral (pinned in tools/spectral/package-lock.json) from the npm registry, into
# tools/spectral/node_modules (git-ignored).
$(SPECTRAL): tools/spectral/package.json tools/spectral/package-lock.json
	npm ci --prefix tools/spectral --no-audit --no-fund --loglevel=error
	touch $@

# The OpenAPI document as served, written to build/openapi.json.
openapi: $(RUN_STAMP)
	mkdir -p build
	$(BIN)/python -m routes.openapi > build/openapi.json

# ruff, ruff format, mypy, and Spectral's `spectral:oas` rules on the OpenAPI document
# (0 errors and 0 warnings: --fail-severity=warn).
lint: $(TEST_STAMP) $(SPECTRAL) openapi
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service documents routes schemas
	$(SPECTRAL) lint build/openapi.json --ruleset .spectral.yaml --fail-severity=warn

clean:
	rm -rf $(VENV) tools/spectral/node_modules build
