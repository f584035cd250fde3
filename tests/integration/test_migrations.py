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


def test_migration_0024_gives_each_child_row_the_ward_of_its_parent(database: Database) -> None:
    """Fee prices and terminals (seeded) and a comment on the second ward's exception."""
    migrate.downgrade(database.engine, "0023")
    with database.engine.begin() as conn:
        second = conn.execute(text("SELECT max(id) FROM municipalities")).scalar_one()
        conn.execute(text("INSERT INTO recon_exceptions (municipality_id, kind, subject_key, business_date, details, "
                          "status, created_at) VALUES (:m, 'unknown_slip', 'test:1', CURRENT_DATE, '{}', 'open', "
                          "CURRENT_TIMESTAMP)"), {"m": second})
        conn.execute(text("INSERT INTO recon_exception_comments (exception_id, author, text, created_at) "
                          "SELECT max(id), 'acct', 'asked the agency', CURRENT_TIMESTAMP FROM recon_exceptions"))
    migrate.upgrade(database.engine)
    with database.engine.connect() as conn:
        for child, parent, column in (("fee_prices", "fee_items", "item_id"), ("terminals", "counters", "counter_id"),
                                      ("recon_exception_comments", "recon_exceptions", "exception_id")):
            pairs = conn.execute(text(f"SELECT c.municipality_id, p.municipality_id FROM {child} c "  # noqa: S608
                                      f"JOIN {parent} p ON p.id = c.{column}")).all()
            assert pairs and all(mine == theirs for mine, theirs in pairs), child
        assert conn.execute(text("SELECT municipality_id FROM recon_exception_comments")).scalar_one() == second


def test_every_tenant_table_but_two_carries_its_ward(database: Database) -> None:
    """Step 1 of docs/scaling.md's plan: only the file-wide and the not-yet-routed tables lack municipality_id."""
    from tests.unit.test_shard_audit import shard_audit

    findings = shard_audit.audit(database.engine)
    without = {found.table for found in findings if f"no {shard_audit.COLUMN} column" in found.problems}
    assert without == {"ledger_imports", "webhook_deliveries"}


def test_migration_0027_keeps_agency_reports_without_lines_and_its_downgrade_drops_them(database: Database) -> None:
    """Rows imported before 0027 stay, with no line (NULL); the downgrade drops the three columns and keeps the rows."""
    migrate.downgrade(database.engine, "0025")
    with database.engine.begin() as conn:
        values = {"m": conn.execute(text("SELECT min(id) FROM municipalities")).scalar_one()}
        conn.execute(text("INSERT INTO agency_imports (municipality_id, adapter, filename, sha256, source, records, "
                          "total_amount, new_records, imported_by, imported_at) VALUES (:m, 'agency-fixed120', "
                          "'a.dat', '00', 'test', 1, 1000, 1, 'test', CURRENT_TIMESTAMP)"), values)
        values["i"] = conn.execute(text("SELECT max(id) FROM agency_imports")).scalar_one()
        conn.execute(text("INSERT INTO agency_reports (municipality_id, adapter, match_key, barcode, slip_number, "
                          "reissue, amount, paid_at, paid_on, store_code, chain_code, channel, preliminary_import_id, "
                          "created_at) VALUES (:m, 'agency-fixed120', 'k', '91', '1', 0, 1000, CURRENT_TIMESTAMP, "
                          "CURRENT_DATE, 's', '010', 'Seven-Eleven', :i, CURRENT_TIMESTAMP)"), values)
    lines = ("preliminary_line", "final_line", "cancel_line")
    assert not set(lines) & {c["name"] for c in inspect(database.engine).get_columns("agency_reports")}

    migrate.upgrade(database.engine, "0027")
    with database.engine.begin() as conn:
        kept = conn.execute(text("SELECT match_key, preliminary_import_id, preliminary_line, final_line, cancel_line "
                                 "FROM agency_reports")).all()
        assert kept == [("k", values["i"], None, None, None)]
        conn.execute(text("UPDATE agency_reports SET final_line = '2020000' WHERE match_key = 'k'"))

    migrate.downgrade(database.engine, "0025")
    assert not set(lines) & {c["name"] for c in inspect(database.engine).get_columns("agency_reports")}
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT match_key, preliminary_import_id FROM agency_reports")).all() == [
            ("k", values["i"])]
    migrate.upgrade(database.engine)
    assert migrate.current_revision(database.engine) == migrate.script_head(database.engine)
