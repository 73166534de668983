# ASR Hub. `make run` and `make test` bootstrap .venv themselves on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test
EXTRAS  ?= default
TEST_EXTRAS ?= default,test
PYTEST_ARGS ?=
FRONTEND := frontend/realtime-streaming
NPM_STAMP := $(FRONTEND)/node_modules/.package-lock.json

.PHONY: run test bench lint typecheck screenshots clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	@touch $@

$(TSTAMP): pyproject.toml scripts/bootstrap-test.sh | $(BIN)/python
	bash scripts/bootstrap-test.sh "$(TEST_EXTRAS)"
	@touch $@ $(STAMP)

# The demo page's one npm dependency, the Socket.IO browser client (the hub serves it at /vendor).
$(NPM_STAMP): $(FRONTEND)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the demo page's Socket.IO transport stays off (apt-get install npm)" >&2; fi

run: $(STAMP) $(NPM_STAMP)
	$(BIN)/asrhub serve $(ARGS)

test: $(TSTAMP) $(NPM_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy src
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(TSTAMP)
	$(BIN)/python -m bench.run_all

lint: $(TSTAMP)
	$(BIN)/ruff check src tests bench scripts

typecheck: $(TSTAMP)
	$(BIN)/mypy src

screenshots: $(TSTAMP) $(NPM_STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info
