# MedLedger: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run demo-ledger test lint typecheck docs bench clean services

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Run the main job: the referral hub demo. Starts the HTTP API (FHIR R4) over a fresh ledger in
# ./medledger-demo, seeds two institutions' referral story, prints curl commands, serves until
# Ctrl-C. MEDLEDGER_DEMO_PORT=8080 picks the port; MEDLEDGER_DEMO_EXIT=1 exits after printing.
run: $(STAMP)
	@$(PY) -m medledger.demo

# The ledger-only demo: 10,000 entries, a certificate verified offline, tampering found by audit.
demo-ledger: $(STAMP)
	@$(PY) -m medledger.demo_ledger

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
