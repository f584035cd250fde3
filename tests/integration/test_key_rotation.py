"""`kokin keys rotate`: every encrypted value re-encrypted under the newest key, in batches,
resumable after a crash, without losing a concurrent writer's value; `kokin keys check` proves
the older keys can go.

The ledger is imported under the suite's data key (the "old" key here); the rotation runs
with a new key put first, as the README's procedure says.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from gateway import create_app
from gateway.cli import cli
from gateway.crypto import DataCipher
from gateway.models import Base, encrypted_columns
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services import key_rotation
from gateway.services.key_rotation import check_keys, rotate_keys
from gateway.services.ledger_import import import_ledger
from tests.conftest import TEST_DATA_KEY
from tests.integration.ledger_corpus import MUNICIPALITY

NEW_KEY = Fernet.generate_key().decode()
BATCH = 100


@pytest.fixture
def names(session, cipher, database) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Import a ward under the old key; return every assessment's payer name by id."""
    rows = list(ward_rows(MUNICIPALITY, 2026, 90, seed=5))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", _day()), filename="fy2026.csv")
    stored = _tokens(database)
    assert len(stored) > 3 * BATCH
    return {row_id: cipher.decrypt(token) for row_id, token in stored.items()}


def _day():  # type: ignore[no-untyped-def]
    from datetime import date

    return date(2026, 4, 1)


def _tokens(database) -> dict[int, bytes]:  # type: ignore[no-untyped-def]
    with database.engine.connect() as conn:
        return {row_id: bytes(token) for row_id, token in conn.execute(text(
            "SELECT id, payer_name_enc FROM assessments WHERE payer_name_enc IS NOT NULL ORDER BY id"))}


@pytest.fixture
def rotating(cipher) -> DataCipher:  # type: ignore[no-untyped-def]
    """The cipher during a rotation: the new key first, the old one still there to read."""
    return DataCipher([NEW_KEY.encode(), TEST_DATA_KEY.encode()], payer_ref_key=cipher.payer_ref_key)


def _read_with_new_key_alone(database) -> dict[int, str]:  # type: ignore[no-untyped-def]
    only_new = DataCipher([NEW_KEY.encode()])
    return {row_id: only_new.decrypt(token) for row_id, token in _tokens(database).items()}


def _names(results: Any) -> Any:
    """The result for the payer names (the other encrypted columns, staff TOTP secrets, are empty here)."""
    return next(result for result in results if result.column == "assessments.payer_name_enc")


def test_every_encrypted_column_is_rotated_and_every_other_binary_column_holds_no_personal_data() -> None:
    binary = {f"{t.name}.{c.name}" for t in Base.metadata.sorted_tables for c in t.columns
              if c.type.python_type is bytes}
    rotated = {f"{t.name}.{c}" for t, c in encrypted_columns()}
    # a zlib copy of a receipts file (no names), a scheduler job's pickled state, and the TOTP secret of an
    # enrolment under way (it lives for minutes: after the old key goes, the enrolment starts again)
    assert binary - rotated == {"outbound_files.content", "apscheduler_jobs.job_state", "staff_sessions.enrol_secret"}
    assert "assessments.payer_name_enc" in rotated


def test_rotation_re_encrypts_every_value_so_the_new_key_alone_reads_them(session, database, names,
                                                                         rotating) -> None:
    found = _names(rotate_keys(session, rotating, batch=BATCH))

    assert (found.column, found.rows, found.current, found.rotated, found.changed) == (
        "assessments.payer_name_enc", len(names), 0, len(names), 0)
    assert _read_with_new_key_alone(database) == names
    again = _names(rotate_keys(session, rotating, batch=BATCH))
    assert (again.current, again.rotated) == (len(names), 0)  # run twice: nothing left to do
    checked = _names(check_keys(session, DataCipher([NEW_KEY.encode()]), batch=BATCH))
    assert (checked.rows, checked.current, checked.needs_old_key, checked.unreadable) == (len(names), len(names), 0, 0)


class _CrashAfterFirstBatch:
    """Progress that fails once the first batch is committed, as a killed process would stop there."""

    def start(self, label: str, total: int) -> None:
        self.total = total

    def advance(self, count: int) -> None:
        raise KeyboardInterrupt("operator pressed Ctrl-C")

    def finish(self) -> None:
        pass


def test_a_rotation_stopped_after_its_first_batch_resumes_and_completes(session, database, names,
                                                                        rotating) -> None:
    with pytest.raises(KeyboardInterrupt):
        rotate_keys(session, rotating, batch=BATCH, progress=_CrashAfterFirstBatch())

    half = _names(check_keys(session, rotating, batch=BATCH))
    assert (half.current, half.needs_old_key) == (BATCH, len(names) - BATCH)  # the first batch is kept
    resumed = _names(rotate_keys(session, rotating, batch=BATCH))
    assert (resumed.current, resumed.rotated) == (BATCH, len(names) - BATCH)
    assert _read_with_new_key_alone(database) == names


def test_a_name_written_while_its_batch_is_being_rotated_keeps_the_writers_value(session, database, names,
                                                                                 rotating, monkeypatch) -> None:
    """The writer commits between the rotation's read of the batch and its write of it."""
    target = sorted(names)[BATCH + 5]  # in the second batch
    written = rotating.encrypt("変更　後子")
    sqlite = database.is_sqlite
    sort, writer = key_rotation._sort, threading.Thread(target=_write_name, args=(database, target, written))

    def sort_then_let_a_writer_in(cipher: DataCipher, rows: list[Any], found: Any) -> Any:
        stale = sort(cipher, rows, found)
        if any(row_id == target for row_id, _ in rows):
            writer.start()
            if not sqlite:  # SQLite: the rotation holds the write lock; the writer waits for its commit
                writer.join(10)
                assert not writer.is_alive()
        return stale

    monkeypatch.setattr(key_rotation, "_sort", sort_then_let_a_writer_in)
    found = _names(rotate_keys(session, rotating, batch=BATCH))
    writer.join(30)

    assert _tokens(database)[target] == written
    assert _read_with_new_key_alone(database) == {**names, target: "変更　後子"}
    # PostgreSQL: the rotation saw the value change under it; SQLite: the writer came after the batch
    assert (found.rotated, found.changed) == ((len(names), 0) if sqlite else (len(names) - 1, 1))


def _write_name(database, row_id: int, token: bytes) -> None:  # type: ignore[no-untyped-def]
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE assessments SET payer_name_enc = :t WHERE id = :id"), {"t": token, "id": row_id})


def test_a_value_no_configured_key_reads_is_named_and_the_others_are_rotated(session, database, names,
                                                                             rotating) -> None:
    lost = sorted(names)[7]
    _write_name(database, lost, Fernet(Fernet.generate_key()).encrypt("鍵なし".encode()))

    found = _names(rotate_keys(session, rotating, batch=BATCH))

    assert (found.rotated, found.unreadable, found.first_unreadable_id) == (len(names) - 1, 1, lost)


# --- the commands -----------------------------------------------------------------------

def _app_with_keys(db_url: str, tmp_path: Path, monkeypatch, keys: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KOKIN_DATA_KEYS", keys)
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")
    return create_app({"DATABASE_URL": db_url, "TESTING": True, "INSTANCE_PATH": str(tmp_path / "instance")})


def test_the_procedure_new_key_first_rotate_check_then_the_old_key_removed(db_url, tmp_path, monkeypatch,
                                                                           names, database) -> None:
    both = _app_with_keys(db_url, tmp_path, monkeypatch, f"{NEW_KEY},{TEST_DATA_KEY}")
    runner = both.test_cli_runner()
    before = runner.invoke(cli, ["keys", "check"])
    assert before.exit_code == 1
    assert f"{len(names):,} values still need an older key: run `kokin keys rotate`" in before.output

    rotated = runner.invoke(cli, ["keys", "rotate", "--batch", str(BATCH)])
    assert rotated.exit_code == 0, rotated.output
    assert (f"assessments.payer_name_enc: {len(names):,} values, 0 already under the newest key, "
            f"{len(names):,} re-encrypted") in rotated.output
    checked = runner.invoke(cli, ["keys", "check"])
    assert checked.exit_code == 0, checked.output
    assert "the 1 older key(s) can be removed from KOKIN_DATA_KEYS" in checked.output
    both.extensions["kokin.db"].dispose()

    new_only = _app_with_keys(db_url, tmp_path, monkeypatch, NEW_KEY)
    alone = new_only.test_cli_runner().invoke(cli, ["keys", "check"])
    assert alone.exit_code == 0, alone.output
    assert "the newest key alone reads every value" in alone.output
    new_only.extensions["kokin.db"].dispose()
    assert _read_with_new_key_alone(database) == names
