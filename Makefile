# MedLedger: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck docs bench clean services

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Run the main job: the ledger demo on the embedded default (SQLite, solo orderer).
run: $(STAMP)
	@$(PY) -m medledger.demo

# Lint, type-check and run the whole test suite against real services.
test: $(STAMP) services
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2 --dist loadgroup

# Make sure the database servers the tests use are up (installs nothing that is already there).
services:
	@bash scripts/services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Regenerate docs/cli.md from `medledger --help`.
docs: $(STAMP)
	$(PY) -m medledger.cli.docgen > docs/cli.md

bench: $(STAMP)
	$(VENV)/bin/medledger bench ledger --entries 1000000

clean:
	rm -rf $(VENV) medledger-data .pytest_cache .mypy_cache .ruff_cache .hypothesis
