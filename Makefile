# Two entry points (README): `make demo` runs the main job, `make test` runs the suite on
# SQLite and on PostgreSQL. Both set up what they need on a fresh machine: Debian packages
# when missing, and a virtual environment in .venv with the pinned dependencies.
SYSTEM_PYTHON ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: translations demo demo-month test test-sqlite test-postgresql test-ops install system-packages postgres lint bench restore-drill

system-packages:
	@bash scripts/system-packages.sh

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PYTHON) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e ".[test]"
	touch $@

install: system-packages $(VENV)/.installed

demo: install
	$(BIN)/kokin db upgrade
	$(BIN)/kokin demo

# A month of the first ward played day by day, in a database of its own (a month starts from an
# empty ward; the year demo's database stays as it is). Run again: a new month from scratch.
MONTH_DB ?= instance/month.sqlite3
demo-month: install
	mkdir -p $(dir $(MONTH_DB)) && rm -f $(MONTH_DB) $(MONTH_DB)-wal $(MONTH_DB)-shm
	KOKIN_DATABASE_URL=sqlite:///$(abspath $(MONTH_DB)) $(BIN)/kokin demo --days 30 --no-serve
	@echo "serve it: KOKIN_DATABASE_URL=sqlite:///$(abspath $(MONTH_DB)) $(BIN)/kokin serve"

test: install postgres
	$(MAKE) --no-print-directory test-sqlite test-postgresql lint

# The suite runs on one pytest-xdist worker per core (each with a database of its own);
# `make test PYTEST_WORKERS=0` runs it in one process. worksteal: a worker that runs out of
# tests takes some from another's queue, so one slow module does not hold up the end.
PYTEST_WORKERS ?= auto
PYTEST := $(PYTHON) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

test-sqlite:
	KOKIN_TEST_DATABASE=sqlite $(PYTEST)

test-postgresql:
	KOKIN_TEST_DATABASE=postgresql $(PYTEST)

postgres:
	@bash scripts/postgres.sh

# Operations alone (they also run in test-postgresql): two instances and two schedulers with
# one of each killed, PgBouncer, the restore drill, metrics under gunicorn, deploy/'s files.
test-ops: install postgres
	KOKIN_TEST_DATABASE=postgresql $(PYTHON) -m pytest -q tests/integration/test_instances.py \
		tests/integration/test_pooler.py tests/integration/test_restore_drill.py \
		tests/integration/test_observability.py tests/contract/test_deploy.py

# pg_dump a demo database, restore it into a fresh one, verify the audit chains, rerun the
# reconciliation, and compare receipts, reconciliation files and reports byte for byte.
restore-drill: install postgres
	$(PYTHON) scripts/restore_drill.py

# The pages' messages: extract them from the code and templates, add the new ones to the English
# catalogue (to be translated), compile it. The compiled catalogue is committed; a test fails
# when it is stale or a message has no English. (Run `make install` once before.)
translations:
	$(BIN)/pybabel extract -F babel.cfg -k _l -o gateway/translations/messages.pot --no-location --omit-header \
		--sort-output --project kokin-gateway gateway reconciliation
	test -f gateway/translations/en/LC_MESSAGES/messages.po || \
		$(BIN)/pybabel init -i gateway/translations/messages.pot -d gateway/translations -l en
	$(BIN)/pybabel update -i gateway/translations/messages.pot -d gateway/translations -l en --no-fuzzy-matching --ignore-pot-creation-date
	$(BIN)/pybabel compile -d gateway/translations -l en

lint:
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/ruff check domain gateway adapters reconciliation migrations tests bench scripts deploy

bench: install postgres
	$(PYTHON) bench/bench_issue.py
	$(PYTHON) bench/bench_pdf.py
