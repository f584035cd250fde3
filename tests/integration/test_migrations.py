"""The schema comes from the migrations, matches the models, and the head file is current."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from gateway import migrate
from gateway.db import Database
from gateway.models import Base
from tests.conftest import RUNTIME_ROLE


@pytest.fixture
def database(owner_url: str) -> Iterator[Database]:
    """The test's database as its owner: migrations are the owner's (the app's runtime role owns nothing)."""
    owner = Database(owner_url)
    yield owner
    if not owner.is_sqlite:  # tables made again by a test are the owner's alone until granted
        migrate.upgrade(owner.engine)
        migrate.grant_runtime(owner.engine, RUNTIME_ROLE)
    owner.dispose()


def test_migrations_build_a_schema_identical_to_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations drifted apart: {diff}"


def test_checked_in_head_file_names_the_newest_migration(database: Database) -> None:
    head = migrate.script_head(database.engine)
    assert migrate.HEAD_FILE.read_text().strip() == head
    assert migrate.current_revision(database.engine) == head


def test_downgrade_to_empty_and_upgrade_again_round_trips(database: Database) -> None:
    migrate.downgrade(database.engine, "base")
    tables = set(inspect(database.engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(database.engine)
    assert {"slips", "assessments", "events"} <= set(inspect(database.engine).get_table_names())


def test_the_event_record_refuses_updates_and_deletes(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO events (kind, subject_type, subject_id, data, actor, recorded_at, chain, "
                          "chain_seq, prev_hash, hash) VALUES ('test', 'test', '1', '{}', 'test', CURRENT_TIMESTAMP, "
                          "0, 1, 'x', 'y')"))
    for statement in ("UPDATE events SET kind = 'changed'", "DELETE FROM events"):
        try:
            with database.engine.begin() as conn:
                conn.execute(text(statement))
        except Exception as exc:  # driver-specific error types
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{statement} was allowed")


def test_migration_0007_keeps_reports_that_exceptions_point_at(database: Database) -> None:
    """Dropping the import ids' foreign keys rebuilds agency_reports on SQLite: its rows and the exceptions stay."""
    migrate.downgrade(database.engine, "0006")
    with database.engine.begin() as conn:
        municipality = conn.execute(text("SELECT min(id) FROM municipalities")).scalar_one()
        values = {"m": municipality}
        conn.execute(text("INSERT INTO agency_imports (municipality_id, adapter, filename, sha256, source, records, "
                          "total_amount, new_records, imported_by, imported_at) VALUES (:m, 'agency-csv', 'a.csv', "
                          "'00', 'test', 1, 1000, 1, 'test', CURRENT_TIMESTAMP)"), values)
        values["i"] = conn.execute(text("SELECT max(id) FROM agency_imports")).scalar_one()
        conn.execute(text("INSERT INTO agency_reports (municipality_id, adapter, match_key, barcode, slip_number, "
                          "reissue, amount, paid_at, paid_on, store_code, chain_code, channel, preliminary_import_id, "
                          "created_at) VALUES (:m, 'agency-csv', 'k', '91', '1', 0, 1000, CURRENT_TIMESTAMP, "
                          "CURRENT_DATE, 's', '010', 'Seven-Eleven', :i, CURRENT_TIMESTAMP)"), values)
        values["r"] = conn.execute(text("SELECT max(id) FROM agency_reports")).scalar_one()
        conn.execute(text("INSERT INTO recon_exceptions (municipality_id, kind, subject_key, business_date, details, "
                          "status, created_at, agency_report_id) VALUES (:m, 'preliminary_cancelled', "
                          "'agency_report:1', CURRENT_DATE, '{}', 'open', CURRENT_TIMESTAMP, :r)"), values)

    migrate.upgrade(database.engine)
    migrate.downgrade(database.engine, "0006")
    migrate.upgrade(database.engine)

    assert migrate.current_revision(database.engine) == migrate.script_head(database.engine)
    with database.engine.connect() as conn:
        kept = conn.execute(text("SELECT r.preliminary_import_id FROM recon_exceptions e "
                                 "JOIN agency_reports r ON r.id = e.agency_report_id")).all()
        assert kept == [(values["i"],)]
        if database.is_sqlite:  # the pooled connections still check references
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
