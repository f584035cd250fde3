"""Assessments with eLTAX data and additions: the eL番号, the eL-QR payload, 延滞金 and 督促手数料.

In kokin-csv (optional columns, by name) and kokin-fixed-2; every check names line, field and why.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import text

from domain.eltax import MAX_EL_QR_BYTES
from gateway.errors import LedgerFileRejected
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.ledger_import import ImportResult, import_ledger
from gateway.services.slips import issue_slips
from tests.integration.ledger_corpus import CSV, MUNICIPALITY

FIXED_2 = "kokin-fixed-2"
BASE: list[dict[str, Any]] = [r for r in ward_rows(MUNICIPALITY, 2026, 40) if int(r["amount"]) > 5000][:6]
LONGEST = ("https://example.invalid/eltax?q=" + "0123456789ABCDEF" * 40)[:MAX_EL_QR_BYTES]
PAYLOADS = [LONGEST, "EL-QR,\"quoted\" \\back\\slash; 地方税統一ＱＲ", "1" * 40, None, "ABC DEF", None]


def eltax_rows() -> list[dict[str, Any]]:
    rows = []
    for index, (row, payload) in enumerate(zip(BASE, PAYLOADS, strict=True)):
        extra = {"el_number": f"{1234500000 + index:010d}{index:022d}" if payload else None, "el_qr": payload,
                 "late_fee": 1000 * index, "dunning_fee": 100 if index % 2 else 0}
        rows.append({**row, **extra})
    return rows


def _import(session, cipher, data: bytes, layout: str = CSV) -> ImportResult:  # type: ignore[no-untyped-def]
    return import_ledger(session, cipher, data, filename="eltax", layout_name=layout)


def _stored(database) -> dict[tuple[str, int], tuple[Any, ...]]:  # type: ignore[no-untyped-def]
    with database.session() as session:
        rows = session.execute(text("SELECT source_key, installment, amount, late_fee, dunning_fee, el_number, el_qr "
                                    "FROM assessments"))
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def _errors(session, cipher, data: bytes, layout: str = CSV) -> list[tuple[int, str | None, str]]:  # type: ignore[no-untyped-def]
    with pytest.raises(LedgerFileRejected) as caught:
        _import(session, cipher, data, layout)
    session.rollback()
    return [(e.line, e.field, e.message) for e in caught.value.errors]


def csv_bytes(header: list[str], rows: list[dict[str, Any]]) -> bytes:
    import csv
    import io
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(name) is None else row[name] for name in header])
    return out.getvalue().encode("utf-8")


@pytest.mark.parametrize("layout", [CSV, FIXED_2])
def test_eltax_numbers_payloads_and_additions_are_stored_exactly_as_given(layout, database, session,
                                                                          cipher) -> None:
    rows = eltax_rows()
    if layout == FIXED_2:  # cp932: the full-width ＱＲ is in it, but keep the payload within 512 cp932 bytes
        assert all(len((r["el_qr"] or "").encode("cp932")) <= 512 for r in rows)

    result = _import(session, cipher, ledger_file_bytes(rows, layout, date(2026, 4, 1)), layout)

    assert result.created == len(rows)
    stored = _stored(database)
    for row in rows:
        assert stored[(row["assessment_id"], row["installment"])] == (
            row["amount"], row["late_fee"], row["dunning_fee"], row["el_number"], row["el_qr"])
    assert len(LONGEST.encode("utf-8")) == MAX_EL_QR_BYTES


def test_the_optional_columns_may_be_absent_and_the_columns_named_in_any_order(database, session, cipher) -> None:
    rows = eltax_rows()
    header = ["amount", "late_fee", "municipality_code", "assessment_id", "fund_code", "fiscal_year", "installment",
              "payer_ref", "payer_name", "due_date"]

    _import(session, cipher, csv_bytes(header, rows))

    assert {v[1:] for v in _stored(database).values()} == {(r["late_fee"], 0, None, None) for r in rows}


def test_the_first_version_of_the_fixed_layout_still_reads_without_the_new_fields(database, session,
                                                                                   cipher) -> None:
    _import(session, cipher, ledger_file_bytes(BASE, "kokin-fixed", date(2026, 4, 1)), "kokin-fixed")

    assert {v[1:] for v in _stored(database).values()} == {(0, 0, None, None)}


def test_every_wrong_eltax_field_is_named_with_its_line_and_reason(database, session, cipher) -> None:
    rows = eltax_rows()
    rows[0]["el_number"] = "12-34"
    rows[1]["el_number"] = "1" * 33
    rows[2]["el_qr"] = "あ" * 171  # 513 bytes in UTF-8
    rows[3]["el_qr"] = " leading space"
    rows[4]["el_qr"] = "bell\x07"
    rows[5]["late_fee"], rows[5]["dunning_fee"] = rows[5]["amount"] - 100, 100
    header = list(rows[0])

    errors = _errors(session, cipher, csv_bytes(header, rows))

    assert [(line, field) for line, field, _ in errors] == [
        (2, "el_number"), (3, "el_number"), (4, "el_qr"), (5, "el_qr"), (6, "el_qr"), (7, "dunning_fee")]
    messages = [m for _, _, m in errors]
    assert "digits only" in messages[0] and "at most 32 digits, got 33" in messages[1]
    assert "513 bytes in UTF-8, more than 512" in messages[2] and "space" in messages[3]
    assert "control character" in messages[4] and "must be less than the amount" in messages[5]
    assert _stored(database) == {}


def test_an_el_number_given_twice_or_already_held_by_another_instalment_is_refused(database, session,
                                                                                    cipher) -> None:
    rows = eltax_rows()
    _import(session, cipher, csv_bytes(list(rows[0]), rows[:2]))
    later = eltax_rows()
    later[0]["el_number"] = "77"  # the first instalment gives its number up in the same file: too late
    later[2]["el_number"] = rows[0]["el_number"]  # held by the first instalment in the ledger
    later[4]["el_number"] = later[3]["el_number"] = "99"

    errors = _errors(session, cipher, csv_bytes(list(rows[0]), later))

    assert [(line, field) for line, field, _ in errors] == [(4, "el_number"), (6, "el_number")]
    assert f"already the eL番号 of assessment {rows[0]['assessment_id']}" in errors[0][2]
    assert "also on line 5" in errors[1][2]


def test_changed_additions_or_eltax_data_amend_the_instalment_and_void_its_slip(database, session,
                                                                                 cipher) -> None:
    rows = eltax_rows()
    _import(session, cipher, csv_bytes(list(rows[0]), rows))
    issue_slips(session, MUNICIPALITY)
    changed = eltax_rows()
    changed[1]["late_fee"] += 1000
    changed[2]["el_qr"] = "another payload"

    result = _import(session, cipher, csv_bytes(list(rows[0]), changed))

    assert (result.amended, result.unchanged, result.voided_slips) == (2, len(rows) - 2, 2)
    stored = _stored(database)
    assert stored[(rows[1]["assessment_id"], rows[1]["installment"])][1] == changed[1]["late_fee"]
    assert stored[(rows[2]["assessment_id"], rows[2]["installment"])][4] == "another payload"
