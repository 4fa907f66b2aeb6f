# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test install lint typecheck unit eval index clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The sentence-transformers extra is tested for real; torch is capped at the local CPU build.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,st,st-test]'
	touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)

## run: set up, build the index if missing, open the console chat
run: $(RUN_STAMP)
	$(BIN)/cadrebot chat

index: $(RUN_STAMP)
	$(BIN)/cadrebot index

eval: $(RUN_STAMP)
	$(BIN)/cadrebot eval eval/dev.jsonl

lint: $(TEST_STAMP)
	$(BIN)/ruff check cadrebot tests bench
	$(BIN)/ruff format --check cadrebot tests bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

unit: $(TEST_STAMP)
	$(BIN)/pytest -q

## test: set up and run every check (lint, types, all tests including the slow real-model ones)
test: lint typecheck unit

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
