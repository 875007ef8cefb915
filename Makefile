# Two commands do all set-up on a fresh machine with python3 and make: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= $(if $(wildcard config.toml),config.toml,config.example.toml)

# Pythons besides the primary one that `make test` also runs the quick part of the suite on (if present).
OTHER_PYS ?= python3.11 python3.12 python3.13

.PHONY: run test worker schema lint bench clean lock

# The tested dependency set from the lock file (hashes checked), then govbot itself as an editable install.
# `pip check` fails when pyproject.toml names a dependency the lock lacks: run `make lock`.
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

## Run the service on the embedded default (SQLite + platform emulator); prints the URLs.
run: $(STAMP)
	$(BIN)/govbot --config $(CONFIG) init
	$(BIN)/govbot --config $(CONFIG) serve

## Run the whole test suite, with a throwaway PostgreSQL for the scale-out tests (installed if missing),
## then the suite without the `slow` tests on every other Python of $(OTHER_PYS) on this machine.
test: $(STAMP)
	bash -c 'source .ci/postgres.sh && source .ci/browser.sh && $(BIN)/python -m pytest -q -p no:cacheprovider'
	PY_PRIMARY=$(BIN)/python bash .ci/other-pythons.sh $(OTHER_PYS)

## Regenerate the lock files (hashes, valid for Python 3.11-3.13) after changing dependencies in pyproject.toml.
lock:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml -q --generate-hashes --universal --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml -q --extra dev --generate-hashes --universal --python-version 3.11 \
		-c requirements.lock -o requirements-dev.lock

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
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/callback_capacity.py

clean:
	rm -rf $(VENV) $(VENV)-3.* data .pytest_cache dist
