"""The schema comes from the migrations, matches the models, and the head file is current."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

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
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_object": migrate.built_here(connection.dialect.name)})
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


def _breaches(database: Database) -> dict[str, set[str]]:
    from tests.unit.test_shard_audit import shard_audit

    return {found.table: set(found.problems) for found in shard_audit.audit(database.engine) if found.problems}


def test_the_schema_keeps_the_distribution_rule(database: Database) -> None:
    """Every tenant table's primary, unique and foreign keys include municipality_id (issue 17, point 8).

    The audit reads the schema the migrations built; a new table or key that breaks the rule fails
    here. On SQLite the tenant tables keep `id INTEGER PRIMARY KEY` (migration 0026): there, and
    only there, their primary key is expected without the ward; their foreign and unique keys
    include it all the same.
    """
    breaches = _breaches(database)
    if database.is_sqlite:
        expected = {"primary key (id) without municipality_id", "primary key (id) without chain",
                    "primary key (record_id) without municipality_id"}  # the receipts queue, likewise
        breaches = {table: problems - expected for table, problems in breaches.items()}
        breaches = {table: problems for table, problems in breaches.items() if problems}
    assert breaches == {}


def _another_ward(conn: Connection) -> tuple[int, int]:
    """A second ward made like the seeded one: (the seeded ward's id, the new one's)."""
    conn.execute(text("INSERT INTO municipalities (code, name, name_kana, company_code, client_code, "
                      "store_deadline_offset_days, pay_base_url, closing_cutoff, created_at) "
                      "SELECT '999997', 'another', name_kana, company_code, client_code, "
                      "store_deadline_offset_days, pay_base_url, closing_cutoff, created_at FROM municipalities "
                      "WHERE id = (SELECT min(id) FROM municipalities)"))
    first, second = conn.execute(text("SELECT min(id), max(id) FROM municipalities")).one()
    return first, second


def test_migration_0026_keys_a_child_to_a_parent_of_its_own_ward(database: Database) -> None:
    """A fee naming another ward's item is refused by the database, on either dialect."""
    with database.engine.begin() as conn:
        first, second = _another_ward(conn)
        item = conn.execute(text("SELECT min(id) FROM fee_items WHERE municipality_id = :m"), {"m": first}).scalar_one()
    assert first != second and item is not None
    insert = text("INSERT INTO fee_prices (municipality_id, item_id, fee, valid_from, set_by, created_at) "
                  "VALUES (:m, :item, 300, '2031-04-01', 'test', CURRENT_TIMESTAMP)")
    with pytest.raises(Exception, match="(?i)foreign key"):  # driver-specific error types
        with database.engine.begin() as conn:
            conn.execute(insert, {"m": second, "item": item})
    with database.engine.connect() as conn:  # the same row in its own ward is taken
        assert conn.execute(insert, {"m": first, "item": item}).rowcount == 1
        conn.rollback()


def test_migration_0026_round_trips_with_rows_in_place(database: Database) -> None:
    """Down to 0025 and up again over the seeded wards: every row kept, the keys back as they were."""
    with database.engine.connect() as conn:
        before = {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
                  for table in ("payments", "slips", "assessments", "fee_prices", "terminals", "receipt_records")}
    migrate.downgrade(database.engine, "0025")
    keys = {key["name"]: key for key in inspect(database.engine).get_foreign_keys("payments")}
    assert keys.keys() >= {"fk_payments_slip_id_slips", "fk_payments_assessment_id_assessments",
                           "fk_payments_sale_id_sales"}
    assert keys["fk_payments_slip_id_slips"]["constrained_columns"] == ["slip_id"]
    migrate.upgrade(database.engine)
    keys = {key["name"]: key for key in inspect(database.engine).get_foreign_keys("payments")}
    assert keys["fk_payments_slip_id_slips"]["constrained_columns"] == ["municipality_id", "slip_id"]
    with database.engine.connect() as conn:
        after = {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
                 for table in before}
        triggers = conn.execute(text(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'receipt_records_queued'"
            if database.is_sqlite else
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'receipt_records_queued'")).scalar_one()
    assert after == before
    assert triggers == 1  # the receipts queue still fills itself


def test_migration_0028_splits_a_file_of_two_wards_and_keeps_a_file_of_none(database: Database) -> None:
    """A file recorded before 0028 whose closures were in two wards gets a row in each; one that
    changed nothing is recorded for every ward, so that importing it again stays a no-op."""
    migrate.downgrade(database.engine, "0027")
    with database.engine.begin() as conn:
        first, second = _another_ward(conn)
        conn.execute(text("INSERT INTO fund_types (municipality_id, code, name, name_en, channels, account, "
                          "revenue_item, company_code, bank_account, active, overpayment_policy) "
                          "SELECT :m, code, name, name_en, channels, account, revenue_item, company_code, "
                          "bank_account, active, overpayment_policy FROM fund_types WHERE municipality_id = :f"),
                     {"m": second, "f": first})
        for digest in ("a" * 64, "b" * 64):
            conn.execute(text("INSERT INTO ledger_imports (sha256, filename, layout, records, total_amount, created, "
                              "amended, unchanged, imported_at) VALUES (:d, 'status.csv', 'kokin-status-csv', 2, 0, "
                              "2, 0, 0, CURRENT_TIMESTAMP)"), {"d": digest})
        both = conn.execute(text("SELECT id FROM ledger_imports WHERE sha256 = :d"), {"d": "a" * 64}).scalar_one()
        for ward in (first, second):
            conn.execute(text("INSERT INTO assessments (municipality_id, source_key, fund_type_id, fiscal_year, "
                              "installment, payer_ref_hmac, amount, due_date, late_fee, dunning_fee, revision, "
                              "closed_reason, closed_on, closed_channel, closed_import_id, created_at, updated_at) "
                              "SELECT :m, 'K-0028', min(id), 2026, 1, :h, 1000, '2026-06-30', 0, 0, 1, 'cancelled', "
                              "'2026-06-01', NULL, :i, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM fund_types "
                              "WHERE municipality_id = :m"), {"m": ward, "h": "0" * 64, "i": both})
    migrate.upgrade(database.engine)
    with database.engine.connect() as conn:
        rows = conn.execute(text("SELECT sha256, municipality_id, id FROM ledger_imports WHERE sha256 IN (:a, :b) "
                                 "ORDER BY sha256, municipality_id"), {"a": "a" * 64, "b": "b" * 64}).all()
        closures = dict(conn.execute(text("SELECT municipality_id, closed_import_id FROM assessments "
                                          "WHERE source_key = 'K-0028'")).all())
    assert [(digest[0], ward) for digest, ward, _ in rows] == [("a", first), ("a", second), ("b", first),
                                                                ("b", second)]
    assert closures == {ward: row_id for digest, ward, row_id in rows if digest == "a" * 64}
    migrate.downgrade(database.engine, "0027")
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_imports WHERE sha256 IN (:a, :b)"),
                            {"a": "a" * 64, "b": "b" * 64}).scalar_one() == 2
        assert set(conn.execute(text("SELECT closed_import_id FROM assessments WHERE source_key = 'K-0028'"))
                   .scalars()) == {both}


def test_migration_0029_keeps_agency_reports_without_lines_and_its_downgrade_drops_them(database: Database) -> None:
    """Rows imported before 0029 stay, with no line (NULL); the downgrade drops the three columns and keeps the rows."""
    migrate.downgrade(database.engine, "0028")
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

    migrate.upgrade(database.engine, "0029")
    with database.engine.begin() as conn:
        kept = conn.execute(text("SELECT match_key, preliminary_import_id, preliminary_line, final_line, cancel_line "
                                 "FROM agency_reports")).all()
        assert kept == [("k", values["i"], None, None, None)]
        conn.execute(text("UPDATE agency_reports SET final_line = '2020000' WHERE match_key = 'k'"))

    migrate.downgrade(database.engine, "0028")
    assert not set(lines) & {c["name"] for c in inspect(database.engine).get_columns("agency_reports")}
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT match_key, preliminary_import_id FROM agency_reports")).all() == [
            ("k", values["i"])]
    migrate.upgrade(database.engine)
    assert migrate.current_revision(database.engine) == migrate.script_head(database.engine)


def test_migration_0030_moves_each_line_to_a_row_of_its_own_and_its_downgrade_puts_them_back(
        database: Database) -> None:
    """Reports of two wards, with some lines and none: each line becomes a row in its report's ward, and back."""
    migrate.downgrade(database.engine, "0029")
    lines = {"preliminary": "2010000 速報", "final": "2020000 確報", "cancel": "2030000 取消"}
    with database.engine.begin() as conn:
        first, second = _another_ward(conn)
        reports = {}
        for ward, key, kept in ((first, "all", ("preliminary", "final", "cancel")), (second, "final", ("final",)),
                                (first, "none", ())):
            values: dict[str, object] = {"m": ward, "k": key, **{kind: lines[kind] if kind in kept else None
                                                                for kind in lines}}
            conn.execute(text("INSERT INTO agency_imports (municipality_id, adapter, filename, sha256, source, "
                              "records, total_amount, new_records, imported_by, imported_at) VALUES (:m, "
                              "'agency-fixed120', :k, :k, 'test', 1, 1000, 1, 'test', CURRENT_TIMESTAMP)"), values)
            conn.execute(text("INSERT INTO agency_reports (municipality_id, adapter, match_key, barcode, slip_number, "
                              "reissue, amount, paid_at, paid_on, store_code, chain_code, channel, "
                              "preliminary_import_id, created_at, preliminary_line, final_line, cancel_line) "
                              "SELECT :m, 'agency-fixed120', :k, '91', '1', 0, 1000, CURRENT_TIMESTAMP, CURRENT_DATE, "
                              "'s', '010', 'Seven-Eleven', max(id), CURRENT_TIMESTAMP, :preliminary, :final, :cancel "
                              "FROM agency_imports"), values)
            reports[key] = conn.execute(text("SELECT id FROM agency_reports WHERE match_key = :k"), values).scalar_one()

    migrate.upgrade(database.engine, "0030")
    assert not {"preliminary_line", "final_line", "cancel_line"} & {
        c["name"] for c in inspect(database.engine).get_columns("agency_reports")}
    with database.engine.begin() as conn:
        moved = conn.execute(text("SELECT agency_report_id, kind, municipality_id, line FROM agency_report_lines "
                                  "ORDER BY agency_report_id, kind")).all()
        assert sorted(moved) == sorted([(reports["all"], kind, first, line) for kind, line in lines.items()]
                                       + [(reports["final"], "final", second, lines["final"])])
        # an eLTAX record, kept from 0030 on, has no column to go back to
        conn.execute(text("INSERT INTO agency_report_lines (agency_report_id, kind, municipality_id, line) "
                          "VALUES (:r, 'eltax', :m, 'e-1,0131075')"), {"r": reports["none"], "m": first})
    with pytest.raises(Exception, match="(?i)foreign key"):  # a line of a report of another ward
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO agency_report_lines (agency_report_id, kind, municipality_id, line) "
                              "VALUES (:r, 'preliminary', :m, 'x')"), {"r": reports["final"], "m": first})

    migrate.downgrade(database.engine, "0029")
    assert "agency_report_lines" not in inspect(database.engine).get_table_names()
    with database.engine.connect() as conn:
        back = conn.execute(text("SELECT match_key, municipality_id, preliminary_line, final_line, cancel_line "
                                 "FROM agency_reports ORDER BY match_key")).all()
    assert back == [("all", first, *lines.values()), ("final", second, None, lines["final"], None),
                    ("none", first, None, None, None)]
    migrate.upgrade(database.engine)
    assert migrate.current_revision(database.engine) == migrate.script_head(database.engine)


def test_migration_0031_records_earlier_deliveries_in_the_services_chain_and_keys_each_ward_apart(
        database: Database) -> None:
    """Deliveries recorded before name no attempt: chain 0. After, one event id may be recorded once per chain;
    the downgrade keeps the first of each (adapter, event id)."""
    migrate.downgrade(database.engine, "0030")
    insert = text("INSERT INTO webhook_deliveries (adapter, event_id, event_type, received_at) "
                  "VALUES ('stripe', :e, 'checkout.session.completed', CURRENT_TIMESTAMP)")
    with database.engine.begin() as conn:
        for event_id in ("evt_1", "malformed:sha256:00"):
            conn.execute(insert, {"e": event_id})

    migrate.upgrade(database.engine, "0031")
    with database.engine.begin() as conn:
        assert sorted(conn.execute(text("SELECT event_id, chain FROM webhook_deliveries")).all()) == [
            ("evt_1", 0), ("malformed:sha256:00", 0)]
        ward = conn.execute(text("SELECT min(id) FROM municipalities")).scalar_one()
        again = text("INSERT INTO webhook_deliveries (adapter, event_id, chain, event_type, received_at) "
                     "VALUES ('stripe', 'evt_1', :c, 'checkout.session.completed', CURRENT_TIMESTAMP)")
        conn.execute(again, {"c": ward})  # delivered again after the upgrade: recorded in its ward
    with pytest.raises(Exception, match="(?i)unique"):  # driver-specific error types
        with database.engine.begin() as conn:
            conn.execute(again, {"c": ward})

    migrate.downgrade(database.engine, "0030")
    with database.engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT event_id FROM webhook_deliveries")).scalars()) == [
            "evt_1", "malformed:sha256:00"]
    with pytest.raises(Exception, match="(?i)unique"):
        with database.engine.begin() as conn:
            conn.execute(insert, {"e": "evt_1"})
    migrate.upgrade(database.engine)
    assert migrate.current_revision(database.engine) == migrate.script_head(database.engine)
