"""Importing the ward's assessments (調定): the good path, amendments, idempotence, concurrency.

Files come from the synthetic ward (gateway.sandbox.ward) in both shipped layouts.
Everything is read back from the database with SQL of its own, never through the import's
own result alone.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from domain import barcode
from domain.layouts import LineError
from gateway.cli import cli
from gateway.config import load_settings
from gateway.errors import GatewayError, LedgerFileRejected
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import ImportResult, import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.slips import get_slip, issue_slips
from tests.integration.ledger_corpus import CSV, FIXED, MUNICIPALITY, ledger_state

PAYERS = 300
ROWS: list[dict[str, Any]] = list(ward_rows(MUNICIPALITY, 2026, PAYERS))
TOTAL = sum(int(r["amount"]) for r in ROWS)
CREATED_ON = date(2026, 4, 1)
LAYOUTS = [CSV, FIXED]
SECOND_WARD = load_settings()["MUNICIPALITIES"][1]["code"]  # the default configuration's second ward


def file_of(rows: list[dict[str, Any]], layout: str = CSV) -> bytes:
    return ledger_file_bytes(rows, layout, CREATED_ON)


def _import(session, cipher, data: bytes, layout: str = CSV, name: str = "ledger") -> ImportResult:  # type: ignore[no-untyped-def]
    return import_ledger(session, cipher, data, filename=name, layout_name=layout)


def _rows(database, sql: str, **params: Any) -> list[tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    """Run raw SQL in a session of its own; dates come back as dates on both backends."""
    with database.session() as session:
        return [tuple(map(_typed, row)) for row in session.execute(text(sql), params)]


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _typed(value: Any) -> Any:
    if isinstance(value, str) and ISO_DATE.match(value):  # SQLite keeps DATE columns as text
        return date.fromisoformat(value)
    return value


ASSESSMENT_DUMP = ("SELECT id, municipality_id, source_key, fund_type_id, fiscal_year, installment, payer_ref_hmac, "
                   "payer_name_enc, amount, due_date, revision, created_at, updated_at FROM assessments ORDER BY id")
REVISION_DUMP = ("SELECT id, assessment_id, revision, amount, due_date, ledger_import_id "
                 "FROM assessment_revisions ORDER BY id")
SLIP_DUMP = "SELECT id, number, reissue, amount, barcode, status, voided_at, void_reason FROM slips ORDER BY id"


def dump(database) -> dict[str, list[tuple[Any, ...]]]:  # type: ignore[no-untyped-def]
    """Every row the ledger is made of: comparing two dumps shows any change at all."""
    return {"assessments": _rows(database, ASSESSMENT_DUMP), "revisions": _rows(database, REVISION_DUMP),
            "slips": _rows(database, SLIP_DUMP)}


def events_after(database, event_id: int) -> list[tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    return _rows(database, "SELECT kind, subject_type, subject_id, data FROM events WHERE id > :id ORDER BY id",
                 id=event_id)


def last_event_id(database) -> int:  # type: ignore[no-untyped-def]
    return _rows(database, "SELECT coalesce(max(id), 0) FROM events")[0][0]  # type: ignore[no-any-return]


def _data(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else json.loads(raw)  # SQLite gives JSON back as text


def key(row: dict[str, Any]) -> tuple[str, int]:
    return (str(row["assessment_id"]), int(row["installment"]))


# --- a whole ward in each layout --------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_ward_file_stores_every_instalment_with_its_amount_due_date_and_one_revision(layout, database, session,
                                                                                    cipher) -> None:
    assert len(ROWS) > 1000 and len({r["payer_ref"] for r in ROWS}) > 200
    data = file_of(ROWS, layout)
    before = last_event_id(database)

    result = _import(session, cipher, data, layout, name=f"fy2026.{layout}")

    assert (result.records, result.total_amount, result.created) == (len(ROWS), TOTAL, len(ROWS))
    assert (result.amended, result.unchanged, result.voided_slips, result.already_imported) == (0, 0, 0, False)
    query = ("SELECT a.source_key, a.installment, f.code, a.fiscal_year, a.payer_ref_hmac, a.amount, a.due_date, "
             "a.revision FROM assessments a JOIN fund_types f ON f.id = a.fund_type_id "
             "JOIN municipalities m ON m.id = a.municipality_id WHERE m.code = :code")
    stored = {(source_key, installment): (fund, fiscal_year, payer_ref, amount, due_date, revision)
              for source_key, installment, fund, fiscal_year, payer_ref, amount, due_date, revision
              in _rows(database, query, code=MUNICIPALITY)}
    assert stored == {key(r): (r["fund_code"], r["fiscal_year"],
                               cipher.payer_ref_hmac(r["municipality_code"], r["payer_ref"]), r["amount"],
                               r["due_date"], 1)
                      for r in ROWS}
    imports = _rows(database, "SELECT id, sha256, filename, layout, records, total_amount, created, amended, "
                              "unchanged FROM ledger_imports")
    assert len(imports) == 1
    import_id, digest, *rest = imports[0]
    assert digest == hashlib.sha256(data).hexdigest()
    assert rest == [f"fy2026.{layout}", layout, len(ROWS), TOTAL, len(ROWS), 0, 0]
    assert _rows(database, "SELECT count(*), sum(amount), min(revision), max(revision), min(ledger_import_id), "
                           "max(ledger_import_id) FROM assessment_revisions") == [
        (len(ROWS), TOTAL, 1, 1, import_id, import_id)]
    events = events_after(database, before)
    assert [e[:3] for e in events] == [("ledger.imported", "ledger_import", str(import_id))]
    assert _data(events[0][3])["records"] == len(ROWS) and _data(events[0][3])["total_amount"] == TOTAL


def test_payer_names_are_stored_encrypted_and_decrypt_with_the_data_key(database, session, cipher) -> None:
    _import(session, cipher, file_of(ROWS))
    names = {key(r): str(r["payer_name"]) for r in ROWS}
    stored = _rows(database, "SELECT source_key, installment, payer_name_enc FROM assessments")
    assert len(stored) == len(names)
    for source_key, installment, raw in stored:
        raw = bytes(raw)
        name = names[(source_key, installment)]
        surname = name.split("　")[0]
        # The stored value is a Fernet token: base64 text, which never holds a byte above 0x7f,
        # so the surname in UTF-8 or cp932 cannot be in it by chance (UTF-16 田中 is "0u-N",
        # which base64 can spell). In the bytes the token carries, the whole name is looked for:
        # long enough that random bytes never match it.
        for encoding in ("utf-8", "cp932"):
            assert surname.encode(encoding) not in raw, (source_key, encoding)
        sealed = base64.urlsafe_b64decode(raw)
        for encoding in ("utf-8", "cp932", "utf-16-le"):
            assert name.encode(encoding) not in sealed, (source_key, encoding)
        assert cipher.decrypt(raw) == name
    # and no name reached the event record either
    every_event = json.dumps([_data(e[3]) for e in events_after(database, 0)], ensure_ascii=False)
    assert not any(name.split("　")[0] in every_event for name in names.values())


def test_a_quote_left_open_is_an_error_of_its_own_line_and_changes_nothing(database, session, cipher) -> None:
    rows = list(ward_rows(MUNICIPALITY, 2026, 1_000))
    header, first, *rest = file_of(rows).split(b"\n")
    data = b"\n".join([header, b'"' + first, *rest])  # more after it than a CSV field may hold (131,072)
    assert len(data) > 150_000
    before = dump(database)

    with pytest.raises(LedgerFileRejected) as rejected:
        _import(session, cipher, data)

    assert [e.line for e in rejected.value.errors] == [2]
    assert dump(database) == before


# --- the same file, or the same rows, again ---------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_importing_the_same_bytes_twice_changes_nothing_the_second_time(layout, database, session, cipher) -> None:
    data = file_of(ROWS, layout)
    _import(session, cipher, data, layout)
    issue_slips(session, MUNICIPALITY)
    before, rows_before = ledger_state(database), dump(database)

    again = _import(session, cipher, data, layout, name="renamed-copy")

    assert again.already_imported
    assert (again.records, again.total_amount, again.created, again.amended) == (len(ROWS), TOTAL, 0, 0)
    assert ledger_state(database) == before
    assert dump(database) == rows_before


def test_a_file_of_two_wards_is_known_again_by_its_bytes_and_the_wards_its_lines_name(database, session,
                                                                                        cipher) -> None:
    second = load_settings()["MUNICIPALITIES"][1]
    seed_reference_data(session, [second])  # the tests seed the first ward alone
    funds = {fund["code"] for fund in second["funds"]}
    shinagawa = [row for row in ward_rows(SECOND_WARD, 2026, 40) if row["fund_code"] in funds]
    assert len(shinagawa) > 7
    rows = shinagawa[:7] + ROWS[:60] + shinagawa[7:]  # the first line is the second ward's
    data = file_of(rows)
    first = _import(session, cipher, data)
    rows_before, state_before = dump(database), ledger_state(database)

    again = _import(session, cipher, data, name="renamed-copy")

    assert not first.already_imported and again.already_imported
    assert (again.records, again.total_amount, again.created) == (len(rows), sum(int(r["amount"]) for r in rows), 0)
    assert _rows(database, "SELECT count(DISTINCT municipality_id), count(*) FROM ledger_imports") == [(2, 2)]
    assert (dump(database), ledger_state(database)) == (rows_before, state_before)


@pytest.mark.parametrize("second", ["kokin-fixed", "reordered kokin-csv with CRLF"])
def test_a_different_file_with_the_same_rows_leaves_every_assessment_and_slip_as_it_was(second, database, session,
                                                                                       cipher) -> None:
    _import(session, cipher, file_of(ROWS))
    issue_slips(session, MUNICIPALITY)
    before, rows_before, event_id = ledger_state(database), dump(database), last_event_id(database)
    if second == "kokin-fixed":
        data, layout = file_of(ROWS, FIXED), FIXED
    else:
        data, layout = file_of(ROWS[::-1]).replace(b"\n", b"\r\n"), CSV

    result = _import(session, cipher, data, layout)

    assert not result.already_imported
    assert (result.created, result.amended, result.unchanged, result.voided_slips) == (0, 0, len(ROWS), 0)
    assert dump(database) == rows_before
    after = ledger_state(database)
    assert after["ledger_imports"] == before["ledger_imports"] + 1  # the file is on record ...
    assert [e[0] for e in events_after(database, event_id)] == ["ledger.imported"]  # ... and nothing else
    assert {k: v for k, v in after.items() if k not in ("ledger_imports", "events")} == {
        k: v for k, v in before.items() if k not in ("ledger_imports", "events")}


# --- amendments -------------------------------------------------------------------------

def _barcoded_target() -> int:
    """Index of an instalment that carries a barcode before and after a 1,000-yen increase."""
    return next(i for i, r in enumerate(ROWS) if int(r["amount"]) <= barcode.MAX_BARCODE_AMOUNT - 1000
                and r["fund_code"] == "11" and int(r["installment"]) == 3)


def _import_and_issue(session, cipher) -> int:  # type: ignore[no-untyped-def]
    _import(session, cipher, file_of(ROWS), name="fy2026.csv")
    assert issue_slips(session, MUNICIPALITY).issued == len(ROWS)
    return session.scalar(text("SELECT max(id) FROM ledger_imports"))  # type: ignore[no-any-return]


def test_amended_amount_voids_the_unpaid_slip_and_reissue_keeps_the_number(database, session, cipher) -> None:
    first_import = _import_and_issue(session, cipher)
    index = _barcoded_target()
    target = ROWS[index]
    old_amount, new_amount = int(target["amount"]), int(target["amount"]) + 1000
    (assessment_id,), = _rows(database, "SELECT id FROM assessments WHERE source_key = :k AND installment = :i",
                              k=target["assessment_id"], i=target["installment"])
    (number, old_barcode), = _rows(database, "SELECT number, barcode FROM slips WHERE assessment_id = :a",
                                   a=assessment_id)
    event_id = last_event_id(database)
    amended_rows = [dict(r, amount=new_amount) if i == index else r for i, r in enumerate(ROWS)]

    result = _import(session, cipher, file_of(amended_rows), name="fy2026-amended.csv")

    assert (result.created, result.amended, result.unchanged, result.voided_slips) == (0, 1, len(ROWS) - 1, 1)
    assert result.amendments == [f"{target['assessment_id']}/{target['installment']}: "
                                 f"{old_amount:,} -> {new_amount:,} yen"]
    (second_import,), = _rows(database, "SELECT max(id) FROM ledger_imports")
    assert second_import != first_import
    assert _rows(database, "SELECT amount, revision FROM assessments WHERE id = :a", a=assessment_id) == [
        (new_amount, 2)]
    assert _rows(database, "SELECT revision, amount, due_date, ledger_import_id FROM assessment_revisions "
                           "WHERE assessment_id = :a ORDER BY revision", a=assessment_id) == [
        (1, old_amount, target["due_date"], first_import), (2, new_amount, target["due_date"], second_import)]
    slips = _rows(database, "SELECT reissue, status, void_reason, voided_at IS NOT NULL FROM slips "
                            "WHERE assessment_id = :a", a=assessment_id)
    assert slips == [(0, "void", "assessment amended", True)]
    assert _rows(database, "SELECT count(*) FROM slips WHERE status = 'issued'") == [(len(ROWS) - 1,)]
    events = events_after(database, event_id)
    assert Counter(e[0] for e in events) == Counter({"assessment.amended": 1, "slip.voided": 1, "ledger.imported": 1})
    amended = next(e for e in events if e[0] == "assessment.amended")
    assert amended[1:3] == ("assessment", str(assessment_id))
    assert _data(amended[3])["amount"] == [old_amount, new_amount] and _data(amended[3])["revision"] == 2
    voided = next(e for e in events if e[0] == "slip.voided")
    assert voided[1:3] == ("slip", f"{number}-0")

    reissue = issue_slips(session, MUNICIPALITY)

    assert (reissue.issued, reissue.reissued) == (1, 1)
    slip = get_slip(session, session.scalar(text("SELECT id FROM municipalities WHERE code = :c"),
                                            {"c": MUNICIPALITY}), number)
    assert (slip.number, slip.reissue, slip.amount, slip.status) == (number, 1, new_amount, "issued")
    assert slip.assessment_id == assessment_id
    assert barcode.is_valid(slip.barcode) and barcode.is_valid(old_barcode)
    assert (old_barcode[29], slip.barcode[29]) == ("0", "1")  # position 30: the reissue count
    assert (int(old_barcode[37:43]), int(slip.barcode[37:43])) == (old_amount, new_amount)
    decoded = barcode.decode(slip.barcode)
    assert (decoded.slip_number, decoded.reissue, decoded.amount) == (number, 1, new_amount)
    assert old_barcode[:29] == slip.barcode[:29]  # company, client and slip number unchanged


def test_an_amended_due_date_is_an_amendment_and_moves_the_reissued_slips_store_deadline(database, session,
                                                                                       cipher) -> None:
    _import_and_issue(session, cipher)
    index = _barcoded_target()
    target = ROWS[index]
    new_due = target["due_date"] + timedelta(days=7)
    (number, old_barcode, old_deadline), = _rows(
        database, "SELECT s.number, s.barcode, s.store_deadline FROM slips s JOIN assessments a "
                  "ON a.id = s.assessment_id WHERE a.source_key = :k AND a.installment = :i",
        k=target["assessment_id"], i=target["installment"])

    result = _import(session, cipher, file_of([dict(target, due_date=new_due)]), name="one-amendment.csv")

    assert (result.amended, result.voided_slips) == (1, 1)
    issue_slips(session, MUNICIPALITY)
    (reissue, due, deadline, new_barcode), = _rows(
        database, "SELECT reissue, due_date, store_deadline, barcode FROM slips WHERE number = :n "
                  "AND status = 'issued'", n=number)
    assert (reissue, due) == (1, new_due)
    assert deadline > old_deadline
    assert new_barcode[30:36] == deadline.strftime("%y%m%d") != old_barcode[30:36]
    assert barcode.is_valid(new_barcode)


def test_a_changed_payer_name_is_stored_without_a_new_revision_or_a_voided_slip(database, session,
                                                                                cipher) -> None:
    _import_and_issue(session, cipher)
    target = ROWS[0]
    result = _import(session, cipher, file_of([dict(target, payer_name="佐藤　新")]))
    assert (result.amended, result.voided_slips) == (0, 0)
    (raw, revision), = _rows(database, "SELECT payer_name_enc, revision FROM assessments "
                                       "WHERE source_key = :k AND installment = :i",
                             k=target["assessment_id"], i=target["installment"])
    assert cipher.decrypt(bytes(raw)) == "佐藤　新" and revision == 1
    assert _rows(database, "SELECT count(*) FROM slips WHERE status = 'void'") == [(0,)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_moving_a_known_assessment_to_another_fund_is_rejected_naming_its_line_and_fund_code(layout, database,
                                                                                          session,
                                                                                          cipher) -> None:
    _import_and_issue(session, cipher)
    before, rows_before = ledger_state(database), dump(database)
    index = next(i for i, r in enumerate(ROWS) if r["fund_code"] == "12")
    moved = [dict(r, fund_code="13") if i == index else r for i, r in enumerate(ROWS)]

    with pytest.raises(LedgerFileRejected) as caught:
        _import(session, cipher, file_of(moved, layout), layout)
    session.rollback()

    assert caught.value.errors == [LineError(index + 2, "fund_code", f"assessment {ROWS[index]['assessment_id']} "
                                             "is recorded under fund 12; a key cannot move to another fund")]
    assert ledger_state(database) == before
    assert dump(database) == rows_before


# --- the event record -------------------------------------------------------------------

@pytest.mark.parametrize("statement", ["UPDATE events SET kind = 'tampered'", "DELETE FROM events"])
def test_the_database_itself_refuses_to_update_or_delete_events(statement, database, session, cipher,
                                                                  owner_url) -> None:
    """Even for the owner (the triggers); the runtime role is not granted it at all (test_audit_chain)."""
    _import(session, cipher, file_of(ROWS[:20]))
    events = _rows(database, "SELECT id, kind, data FROM events ORDER BY id")
    assert len(events) >= 2

    owner = create_engine(owner_url, poolclass=NullPool)
    with owner.connect() as connection:
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement))
        connection.rollback()
    owner.dispose()

    assert _rows(database, "SELECT id, kind, data FROM events ORDER BY id") == events


# --- what Windows tools write -----------------------------------------------------------

@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_a_utf8_csv_with_a_byte_order_mark_is_accepted(line_end, database, session, cipher) -> None:
    data = b"\xef\xbb\xbf" + file_of(ROWS).replace(b"\n", line_end)

    result = _import(session, cipher, data)

    assert (result.created, result.total_amount) == (len(ROWS), TOTAL)
    assert _rows(database, "SELECT DISTINCT m.code FROM assessments a JOIN municipalities m "
                           "ON m.id = a.municipality_id") == [(MUNICIPALITY,)]
    stored = {ref for (ref,) in _rows(database, "SELECT payer_ref_hmac FROM assessments")}
    assert stored == {cipher.payer_ref_hmac(MUNICIPALITY, r["payer_ref"]) for r in ROWS}  # no line end in a reference


# --- two imports at once ----------------------------------------------------------------

def _race(database, cipher, files: list[tuple[bytes, str]]) -> list[ImportResult | GatewayError]:  # type: ignore[no-untyped-def]
    """Import the files from one thread each, started together, each with its own session."""
    start = threading.Barrier(len(files))

    def run(data: bytes, layout: str) -> ImportResult | GatewayError:
        with database.session() as session:
            start.wait(timeout=30)
            try:
                return _import(session, cipher, data, layout, name=f"race.{layout}")
            except GatewayError as exc:
                return exc

    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        futures = [pool.submit(run, data, layout) for data, layout in files]
        return [f.result(timeout=120) for f in futures]


def test_two_simultaneous_imports_of_the_same_file_leave_one_import_and_no_duplicate_assessments(database,
                                                                                              cipher) -> None:
    data = file_of(ROWS)

    results = _race(database, cipher, [(data, CSV), (data, CSV)])

    assert all(isinstance(r, ImportResult) for r in results), results
    assert sorted(r.already_imported for r in results) == [False, True]  # type: ignore[union-attr]
    assert _rows(database, "SELECT count(*), min(records) FROM ledger_imports") == [(1, len(ROWS))]
    assert _rows(database, "SELECT count(*), count(DISTINCT source_key || '/' || installment), sum(amount) "
                           "FROM assessments") == [(len(ROWS), len(ROWS), TOTAL)]
    assert _rows(database, "SELECT count(*) FROM assessment_revisions") == [(len(ROWS),)]
    assert _rows(database, "SELECT count(*) FROM events WHERE kind = 'ledger.imported'") == [(1,)]


def test_two_simultaneous_imports_of_the_same_rows_in_different_files_never_duplicate_an_assessment(database,
                                                                                                 cipher) -> None:
    results = _race(database, cipher, [(file_of(ROWS, CSV), CSV), (file_of(ROWS, FIXED), FIXED)])

    imported = [r for r in results if isinstance(r, ImportResult)]
    refused = [r for r in results if isinstance(r, GatewayError)]
    assert sorted(r.created for r in imported) in ([len(ROWS)], [0, len(ROWS)]), results
    assert all(r.code == "ledger_conflict" and r.status == 409 for r in refused), results
    assert _rows(database, "SELECT count(*) FROM ledger_imports") == [(len(imported),)]
    assert _rows(database, "SELECT count(*), count(DISTINCT source_key || '/' || installment), sum(amount) "
                           "FROM assessments") == [(len(ROWS), len(ROWS), TOTAL)]
    assert _rows(database, "SELECT count(*) FROM assessment_revisions") == [(len(ROWS),)]


# --- the command ------------------------------------------------------------------------

def test_kokin_ledger_import_says_what_it_did_and_the_second_run_changes_nothing(app, database, tmp_path,
                                                                                monkeypatch) -> None:
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")
    path = tmp_path / "fy2026.dat"
    path.write_bytes(file_of(ROWS, FIXED))
    runner = app.test_cli_runner()
    first = runner.invoke(cli, ["ledger", "import", str(path), "--layout", FIXED])
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        f"fy2026.dat: {len(ROWS):,} records, {TOTAL:,} yen ({len(ROWS):,} new, 0 amended, 0 payer details updated, "
        "0 unchanged; "
        "0 unpaid slips voided for reissue)"]
    before = ledger_state(database)

    second = runner.invoke(cli, ["ledger", "import", str(path), "--layout", FIXED])

    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines() == [f"fy2026.dat: already imported ({len(ROWS):,} records); nothing changed"]
    assert ledger_state(database) == before
