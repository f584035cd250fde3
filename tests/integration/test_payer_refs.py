"""Payer references are kept only as a keyed hash: never in plain text, still found by equality.

The core system's `payer_ref` is only ever compared (is a changed line the same payer?); it
is not in the receipts feed, the reports or any page. So it is stored as HMAC-SHA256 under
KOKIN_PAYER_REF_KEY, which production must be given.
"""
from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from gateway import create_app, migrate
from gateway.cli import cli
from gateway.crypto import payer_ref_hmac
from gateway.db import Database
from gateway.models import Assessment
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import import_ledger
from tests.conftest import RUNTIME_ROLE, TEST_PAYER_REF_KEY
from tests.integration.ledger_corpus import MUNICIPALITY

ROWS: list[dict[str, Any]] = list(ward_rows(MUNICIPALITY, 2026, 40, seed=3))


def _import(session, cipher, rows: list[dict[str, Any]], name: str = "fy2026.csv"):  # type: ignore[no-untyped-def]
    return import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename=name)


def _raw(database, sql: str) -> list[tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    with database.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_no_payer_reference_is_stored_in_plain_text(session, cipher, database) -> None:
    _import(session, cipher, ROWS)

    stored = [value for (value,) in _raw(database, "SELECT payer_ref_hmac FROM assessments")]
    assert len(stored) == len(ROWS)
    assert all(re.fullmatch("[0-9a-f]{64}", value) for value in stored)
    references = {row["payer_ref"] for row in ROWS}
    assert not any(ref in value for value in stored for ref in references)
    columns = {name for (name,) in _raw(database, "SELECT name FROM pragma_table_info('assessments')")} \
        if database.is_sqlite else \
        {name for (name,) in _raw(database, "SELECT column_name FROM information_schema.columns "
                                            "WHERE table_name = 'assessments'")}
    assert "payer_ref" not in columns


def test_the_assessments_of_one_payer_are_found_by_the_keyed_hash_of_the_reference(session, cipher) -> None:
    _import(session, cipher, ROWS)
    expected: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for row in ROWS:
        expected[row["payer_ref"]].add((row["assessment_id"], int(row["installment"])))

    for ref, keys in list(expected.items())[:10]:
        found = session.execute(select(Assessment.source_key, Assessment.installment).where(
            Assessment.payer_ref_hmac == cipher.payer_ref_hmac(MUNICIPALITY, ref))).all()
        assert set(found) == keys


def test_a_reimport_tells_a_changed_payer_from_an_unchanged_one(session, cipher) -> None:
    _import(session, cipher, ROWS)
    moved = {row["payer_ref"] for row in ROWS[:3]}
    changed = [dict(row, payer_ref="9" * 10) if row["payer_ref"] in moved else row for row in ROWS]

    result = _import(session, cipher, changed, name="fy2026-2.csv")

    lines = sum(row["payer_ref"] in moved for row in ROWS)
    assert (result.payer_updated, result.unchanged, result.amended) == (lines, len(ROWS) - lines, 0)
    assert session.scalar(select(Assessment.id).where(
        Assessment.payer_ref_hmac == cipher.payer_ref_hmac(MUNICIPALITY, "9" * 10)).limit(1)) is not None


def test_the_hash_is_keyed_and_tied_to_the_municipality(cipher) -> None:
    here = cipher.payer_ref_hmac(MUNICIPALITY, "0000000001")
    assert here == payer_ref_hmac(TEST_PAYER_REF_KEY.encode(), MUNICIPALITY, "0000000001")
    assert here != payer_ref_hmac(b"another-key-of-thirty-two-bytes!", MUNICIPALITY, "0000000001")
    assert here != cipher.payer_ref_hmac("131016", "0000000001")


# --- the key ----------------------------------------------------------------------------

def _production(tmp_path: Path) -> dict[str, object]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}", "INSTANCE_PATH": str(tmp_path / "instance"),
            "SANDBOX": False, "ADAPTERS": {}, "AGENCIES": {}}


def test_production_without_a_payer_reference_key_does_not_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KOKIN_DATA_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("KOKIN_SECRET_KEY", "a-long-random-secret-from-the-vault")
    monkeypatch.delenv("KOKIN_PAYER_REF_KEY", raising=False)
    with pytest.raises(RuntimeError, match="KOKIN_PAYER_REF_KEY is not set"):
        create_app(_production(tmp_path))
    assert not (tmp_path / "instance" / "payer-ref-key").exists()  # never made up in production
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", "too-short")
    with pytest.raises(RuntimeError, match="KOKIN_PAYER_REF_KEY is shorter than 32 bytes"):
        create_app(_production(tmp_path))


def test_sandbox_keeps_one_payer_reference_key_in_the_instance_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KOKIN_PAYER_REF_KEY", raising=False)
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}", "INSTANCE_PATH": str(tmp_path)}
    first, second = create_app(config), create_app(config)
    key = first.extensions["kokin.cipher"].payer_ref_key
    assert key == second.extensions["kokin.cipher"].payer_ref_key and len(key) >= 32
    assert (tmp_path / "payer-ref-key").stat().st_mode & 0o077 == 0


# --- migration 0019 ---------------------------------------------------------------------

def _plain_assessment(database) -> int:  # type: ignore[no-untyped-def]
    """An assessment as revision 0018 stored it: the reference in plain text."""
    with database.engine.begin() as conn:
        municipality, fund = conn.execute(text(
            "SELECT m.id, f.id FROM municipalities m JOIN fund_types f ON f.municipality_id = m.id "
            "WHERE m.code = :code ORDER BY f.id LIMIT 1"), {"code": MUNICIPALITY}).one()
        conn.execute(text(
            "INSERT INTO assessments (municipality_id, source_key, fund_type_id, fiscal_year, installment, payer_ref, "
            "amount, due_date, late_fee, dunning_fee, revision, created_at, updated_at) VALUES (:m, 'A-1', :f, 2026, "
            "1, '0000012345', 5000, '2026-06-30', 0, 0, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
            {"m": municipality, "f": fund})
        return int(conn.execute(text("SELECT max(id) FROM assessments")).scalar_one())


def test_migration_0019_replaces_every_stored_reference_by_its_keyed_hash(app, owner_url, tmp_path,
                                                                          monkeypatch) -> None:
    """As the database's owner, who migrates (on PostgreSQL the tests' app is the runtime role, which cannot)."""
    database = Database(owner_url)
    migrate.downgrade(database.engine, "0018")
    row_id = _plain_assessment(database)
    monkeypatch.delenv("KOKIN_PAYER_REF_KEY", raising=False)
    with pytest.raises(RuntimeError, match="needs the payer reference key"):
        migrate.upgrade(database.engine)
    assert migrate.current_revision(database.engine) == "0018"  # nothing half-done

    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")
    monkeypatch.setenv("KOKIN_PAYER_REF_KEY", TEST_PAYER_REF_KEY)
    owner_app = create_app({"DATABASE_URL": owner_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "owner")})
    upgraded = owner_app.test_cli_runner().invoke(cli, ["db", "upgrade"])  # hands the app's key to the migration
    owner_app.extensions["kokin.db"].dispose()
    if not database.is_sqlite:
        migrate.grant_runtime(database.engine, RUNTIME_ROLE)

    assert upgraded.exit_code == 0, upgraded.output
    assert migrate.current_revision(database.engine) == migrate.script_head(database.engine)
    assert _raw(database, f"SELECT payer_ref_hmac FROM assessments WHERE id = {row_id}") == [
        (payer_ref_hmac(TEST_PAYER_REF_KEY.encode(), MUNICIPALITY, "0000012345"),)]
    database.dispose()
