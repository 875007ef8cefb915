# Two commands do all set-up on a fresh machine with python3 and make: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= $(if $(wildcard config.toml),config.toml,config.example.toml)

.PHONY: run test worker schema lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## Run the service on the embedded default (SQLite + platform emulator); prints the URLs.
run: $(STAMP)
	$(BIN)/govbot --config $(CONFIG) init
	$(BIN)/govbot --config $(CONFIG) serve

## Run the whole test suite, with a throwaway PostgreSQL for the scale-out tests (installed if missing).
test: $(STAMP)
	bash -c 'source .ci/postgres.sh && $(BIN)/python -m pytest -q -p no:cacheprovider'

## An extra worker process on the same database (scale-out).
worker: $(STAMP)
	$(BIN)/govbot --config $(CONFIG) worker

## Regenerate migrations/versions/0001_initial.py from bot/models.py (before the first release only).
schema: $(STAMP)
	$(BIN)/python migrations/regenerate.py

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench

## Benchmarks (they print numbers; see README).
bench: $(STAMP)
	$(BIN)/python bench/publish_latency.py
	$(BIN)/python bench/triage_quality.py
	$(BIN)/python bench/triage_throughput.py
	$(BIN)/python bench/report_scale.py
	$(BIN)/python bench/callback_capacity.py

clean:
	rm -rf $(VENV) data .pytest_cache
