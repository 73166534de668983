# ASR Hub. `make run` and `make test` bootstrap .venv themselves on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test
EXTRAS  ?= default
TEST_EXTRAS ?= default,test
PYTEST_ARGS ?=

.PHONY: run test bench lint typecheck screenshots clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml scripts/install.sh | $(BIN)/python
	bash scripts/install.sh $(BIN)/python "$(EXTRAS)" editable
	@touch $@

$(TSTAMP): pyproject.toml scripts/bootstrap-test.sh scripts/install.sh | $(BIN)/python
	bash scripts/bootstrap-test.sh "$(TEST_EXTRAS)"
	@touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/asrhub serve $(ARGS)

test: $(TSTAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy src
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(TSTAMP)
	$(BIN)/python -m bench.run_all

lint: $(TSTAMP)
	$(BIN)/ruff check src tests bench scripts

typecheck: $(TSTAMP)
	$(BIN)/mypy src

screenshots: $(TSTAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
