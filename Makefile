# Two entry points: `make run` serves the API, `make test` runs the suite.
# Both create .venv and install what they need on first use (run: the service only;
# test: the service plus the test tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

SPECTRAL := tools/spectral/node_modules/.bin/spectral

.PHONY: run test lint openapi bench clean

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
	$(BIN)/uvicorn service.main:app --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: $(TEST_STAMP)
	$(BIN)/pytest

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
