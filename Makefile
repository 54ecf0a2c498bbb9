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

.PHONY: help run test fuzz lint clean

help:
	@echo "make run    serve the API on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (HOST, PORT; JSON logs)"
	@echo "make test   the test suite without the fuzz run (TEST_WORKERS=$(TEST_WORKERS) processes)"
	@echo "make fuzz   the whole-API Schemathesis run (about 2 minutes)"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make clean  remove .venv"
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

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service documents routes schemas

clean:
	rm -rf $(VENV)
