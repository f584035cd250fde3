# Two entry points (README): `make demo` runs the main job, `make test` runs the suite on
# SQLite and on PostgreSQL. Both install what they need on a fresh machine.
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: demo test test-sqlite test-postgresql install system-packages postgres lint bench

system-packages:
	@bash scripts/system-packages.sh

install: system-packages
	$(PIP) install -q -e ".[test]"

demo: install
	kokin db upgrade
	kokin demo

test: install postgres
	$(MAKE) --no-print-directory test-sqlite test-postgresql lint

test-sqlite:
	KOKIN_TEST_DATABASE=sqlite $(PYTHON) -m pytest -q

test-postgresql:
	KOKIN_TEST_DATABASE=postgresql $(PYTHON) -m pytest -q

postgres:
	@bash scripts/postgres.sh

lint:
	lint-imports
	mypy
	ruff check gateway adapters reconciliation migrations tests bench

bench: install postgres
	$(PYTHON) bench/bench_issue.py
	$(PYTHON) bench/bench_pdf.py
