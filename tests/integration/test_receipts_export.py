"""The receipts file (消込データ) for the core system, from payments made through the real services."""
from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from adapters.agency.simulator import StorePayment, files_by_day, schedule
from domain import layouts
from domain.layouts import LayoutError
from gateway.cli import cli
from gateway.db import transaction
from gateway.models import Assessment, Payment, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.agency_import import import_agency_file
from gateway.services.ledger_import import import_ledger
from gateway.services.slips import issue_slips
from reconciliation.receipts import (
    LAYOUT_DIR,
    ReceiptsNotWritable,
    booked_fiscal_year,
    export_receipts,
    load_receipts_layout,
    write_export,
)
from tests.card import pay_by_card

CODE = "131075"
TOKYO = ZoneInfo("Asia/Tokyo")
DAY = date(2026, 7, 10)


def _row(key: str, fund: str, fiscal_year: int, installment: int, amount: int, due: date) -> dict[str, object]:
    return dict(municipality_code=CODE, assessment_id=key, fund_code=fund, fiscal_year=fiscal_year,
                installment=installment, payer_ref=key[-10:], payer_name="", amount=amount, due_date=due)


ROWS = [
    _row("01-2026-0000000001", "01", 2026, 1, 12_300, date(2026, 7, 31)),  # card, then paid again at a store
    _row("02-2026-0000000002", "02", 2026, 1, 7_200, date(2026, 7, 31)),  # at a store
    _row("01-2026-0000000003", "01", 2026, 1, 5_000, date(2026, 7, 31)),  # card, the evening before
    _row("12-2026-0000000005", "12", 2026, 1, 31_000, date(2026, 7, 31)),  # card, the same second as the first
    _row("11-2025-0000000004", "11", 2025, 10, 9_900, date(2026, 3, 31)),  # FY2025, paid in the closing period
]


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=TOKYO)


@pytest.fixture
def payments(app, session, cipher) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Pay the ledger above; return each assessment's applied payment id and the overpayment's."""
    import_ledger(session, cipher, ledger_file_bytes(ROWS, "kokin-csv", date(2026, 4, 1)), filename="l.csv")
    issue_slips(session, CODE)
    slips = {key: session.scalar(select(Slip).join(Assessment, Assessment.id == Slip.assessment_id)
                                 .where(Assessment.source_key == key)) for key in (r["assessment_id"] for r in ROWS)}
    ids = {key: _pay_by_card(app, session, slips[key]) for key in
           ("01-2026-0000000001", "12-2026-0000000005", "01-2026-0000000003", "11-2025-0000000004")}
    _pay_at_a_store(app, session, [StorePayment(slips["02-2026-0000000002"].barcode, _at(DAY, 0), "0001234", "820"),
                                   StorePayment(slips["01-2026-0000000001"].barcode, _at(DAY, 12), "0001234", "820")])
    ids["02-2026-0000000002"] = session.scalar(select(Payment.id).where(
        Payment.slip_id == slips["02-2026-0000000002"].id))
    ids["overpaid"] = session.scalar(select(Payment.id).where(Payment.overpaid))
    _accept_at(session, ids["01-2026-0000000001"], _at(DAY, 9, 15, 30))
    _accept_at(session, ids["12-2026-0000000005"], _at(DAY, 9, 15, 30))
    _accept_at(session, ids["01-2026-0000000003"], _at(date(2026, 7, 9), 23, 59, 59))
    _accept_at(session, ids["11-2025-0000000004"], _at(date(2026, 5, 31), 23, 30))
    return ids


def _pay_by_card(app, session, slip: Slip):  # type: ignore[no-untyped-def]
    return pay_by_card(app, session, slip).payment.id


def _pay_at_a_store(app, session, store_payments: list[StorePayment]) -> None:  # type: ignore[no-untyped-def]
    agency = app.extensions["kokin.agencies"]["agency-csv"]
    preliminaries = [s for s in schedule(store_payments) if s.kind == "preliminary"]
    for data in files_by_day(agency, preliminaries, client_code="13107").values():
        import_agency_file(session, agency, data, municipality_code=CODE, filename="sokuho.csv", source="test",
                           actor="test")


def _accept_at(session, payment_id: int, accepted_at: datetime) -> None:  # type: ignore[no-untyped-def]
    with transaction(session):
        session.execute(update(Payment).where(Payment.id == payment_id).values(accepted_at=accepted_at))


def _receipt(ids: dict[str, int], key: str, channel: str, accepted: datetime) -> dict[str, Any]:
    row = next(r for r in ROWS if r["assessment_id"] == key)
    return {"receipt_id": f"{CODE}-{ids[key]:012d}", "municipality_code": CODE, "assessment_id": key,
            "fund_code": row["fund_code"], "fiscal_year": row["fiscal_year"], "installment": row["installment"],
            "amount": row["amount"], "accepted_on": accepted.date(),
            "accepted_time": accepted.time().replace(tzinfo=None), "booked_fiscal_year": 2026, "channel": channel}


def _expected(ids: dict[str, int]) -> list[dict[str, Any]]:
    """The receipts of DAY, in (accepted_at, payment id) order."""
    return [_receipt(ids, "02-2026-0000000002", "agency", _at(DAY, 0)),
            _receipt(ids, "01-2026-0000000001", "card", _at(DAY, 9, 15, 30)),
            _receipt(ids, "12-2026-0000000005", "card", _at(DAY, 9, 15, 30))]


def _read(layout_name: str, data: bytes) -> list[layouts.Record]:
    records, errors = layouts.read(load_receipts_layout(layout_name), data)
    assert errors == []
    return records


def _fields(record: layouts.Record) -> dict[str, Any]:
    return {name: value for name, value in record.values.items() if name != "filler"}


def test_the_fixed_file_holds_exactly_the_applied_payments_of_the_date_without_fees(session, payments) -> None:  # type: ignore[no-untyped-def]
    card = session.get(Payment, payments["01-2026-0000000001"])
    overpaid = session.get(Payment, payments["overpaid"])
    assert card.fee_amount > 0 and card.applied  # the card fee was charged on top ...
    assert overpaid.accepted_at.astimezone(TOKYO).date() == DAY and not overpaid.applied

    result = export_receipts(session, CODE, DAY, "receipts-fixed")

    assert result.data.count(b"\r\n") == 6 and all(len(line) == 128 for line in result.data.split(b"\r\n")[:-1])
    header, *data, trailer, end = _read("receipts-fixed", result.data)
    assert _fields(header) == {"created_on": date(2026, 7, 11), "municipality_code": CODE, "business_date": DAY}
    assert [_fields(r) for r in data] == _expected(payments)  # ... and is not in any amount
    assert _fields(trailer) == {"record_count": 3, "total_amount": 7_200 + 12_300 + 31_000}
    assert (end.kind, result.count, result.total) == ("end", 3, 7_200 + 12_300 + 31_000)
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()


def test_the_csv_file_reads_back_as_the_same_receipts_with_a_header_line(session, payments) -> None:  # type: ignore[no-untyped-def]
    result = export_receipts(session, CODE, DAY, "receipts-csv")

    lines = result.data.split(b"\r\n")
    assert lines[0] == (b"receipt_id,municipality_code,assessment_id,fund_code,fiscal_year,installment,amount,"
                        b"accepted_on,accepted_time,booked_fiscal_year,channel")
    assert lines[2].decode("cp932").endswith(",12300,2026-07-10,09:15:30,2026,card") and lines[-1] == b""
    assert [_fields(r) for r in _read("receipts-csv", result.data)] == _expected(payments)
    assert (result.count, result.total) == (3, 50_500)


@pytest.mark.parametrize("layout", ["receipts-fixed", "receipts-csv"])
def test_two_exports_are_byte_identical_and_the_sidecar_is_the_files_sha256(session, payments, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                             layout: str) -> None:
    tmp_path = tmp_path / "out"  # the test's app keeps its instance folder (and SQLite file) in tmp_path
    tmp_path.mkdir()
    out = tmp_path / "receipts.dat"
    write_export(export_receipts(session, CODE, DAY, layout), out)
    first = out.read_bytes()
    write_export(export_receipts(session, CODE, DAY, layout), out)

    assert out.read_bytes() == first
    sidecar = (tmp_path / "receipts.dat.sha256").read_text("ascii")
    assert sidecar == f"{hashlib.sha256(first).hexdigest()}  receipts.dat\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["receipts.dat", "receipts.dat.sha256"]  # no temp files


def test_a_previous_year_assessment_paid_by_31_may_books_to_that_year_and_from_1_june_to_the_new(  # type: ignore[no-untyped-def]
        session, payments) -> None:
    (may_31,) = _read("receipts-csv", export_receipts(session, CODE, date(2026, 5, 31), "receipts-csv").data)
    _accept_at(session, payments["11-2025-0000000004"], _at(date(2026, 6, 1), 0, 10))
    (june_1,) = _read("receipts-csv", export_receipts(session, CODE, date(2026, 6, 1), "receipts-csv").data)

    assert (may_31.values["fiscal_year"], may_31.values["booked_fiscal_year"]) == (2025, 2025)
    assert (june_1.values["fiscal_year"], june_1.values["booked_fiscal_year"]) == (2025, 2026)
    assert may_31.values["receipt_id"] == june_1.values["receipt_id"]  # the same payment, the same receipt
    assert export_receipts(session, CODE, date(2026, 5, 31), "receipts-csv").count == 0


@pytest.mark.parametrize(("assessment_year", "paid_on", "booked"), [
    (2025, date(2026, 3, 31), 2025),  # the last day of the fiscal year
    (2025, date(2026, 4, 1), 2025),  # the closing period opens: the previous year still books
    (2025, date(2026, 5, 31), 2025),  # its last day
    (2025, date(2026, 6, 1), 2026),  # closed: the current year
    (2024, date(2026, 4, 1), 2026),  # two years old: its year closed long ago
    (2024, date(2026, 3, 31), 2025),
    (2026, date(2026, 4, 1), 2026),  # the new year's own assessment
    (2026, date(2026, 5, 31), 2026),
    (2026, date(2027, 1, 4), 2026),
])
def test_the_closing_period_decides_the_fiscal_year_a_receipt_books_to(assessment_year: int, paid_on: date,
                                                                        booked: int) -> None:
    assert booked_fiscal_year(assessment_year, paid_on) == booked


def test_a_date_without_payments_gives_a_file_with_count_and_total_zero(session, payments) -> None:  # type: ignore[no-untyped-def]
    fixed = export_receipts(session, CODE, date(2026, 7, 12), "receipts-fixed")
    csv = export_receipts(session, CODE, date(2026, 7, 12), "receipts-csv")

    assert [r.kind for r in _read("receipts-fixed", fixed.data)] == ["header", "trailer", "end"]
    assert _fields(_read("receipts-fixed", fixed.data)[1]) == {"record_count": 0, "total_amount": 0}
    assert csv.data.count(b"\r\n") == 1 and (csv.count, csv.total) == (0, 0)


def test_a_wards_layout_that_would_cut_a_value_is_refused_rather_than_written(session, payments,  # type: ignore[no-untyped-def]
                                                                              tmp_path: Path) -> None:
    short = (LAYOUT_DIR / "receipts-csv.toml").read_text("utf-8")
    ward = tmp_path / "ward.toml"
    ward.write_text(short.replace('name = "assessment_id", type = "text", max_bytes = 32',
                                  'name = "assessment_id", type = "text", max_bytes = 8'), "utf-8")
    with pytest.raises(ReceiptsNotWritable, match="assessment_id"):
        export_receipts(session, CODE, DAY, str(ward))

    ward.write_text(short.replace('name = "channel"', 'name = "payer_name"'), "utf-8")
    with pytest.raises(LayoutError, match="no field payer_name"):
        export_receipts(session, CODE, DAY, str(ward))


def test_the_cli_writes_the_file_and_its_sha256_and_a_rerun_writes_the_same_bytes(app, payments,  # type: ignore[no-untyped-def]
                                                                                   tmp_path: Path) -> None:
    out = tmp_path / "receipts.dat"
    runner = app.test_cli_runner()

    first = runner.invoke(cli, ["recon", "export", "--date", "2026-07-10", "--out", str(out)])
    written = out.read_bytes()
    again = runner.invoke(cli, ["recon", "export", "--date", "2026-07-10", "--out", str(out)])

    assert first.exit_code == 0 and again.exit_code == 0, first.output
    digest = hashlib.sha256(written).hexdigest()
    assert "3 receipts of 2026-07-10, 50,500 yen" in first.stdout and f"sha256 {digest}" in first.stdout
    assert again.stdout == first.stdout and out.read_bytes() == written
    assert (tmp_path / "receipts.dat.sha256").read_text("ascii") == f"{digest}  receipts.dat\n"
    csv = runner.invoke(cli, ["recon", "export", "--date", "2026-07-10", "--out", str(tmp_path / "r.csv"),
                              "--layout", "receipts-csv"])
    assert csv.exit_code == 0 and "layout receipts-csv" in csv.stdout


@pytest.mark.parametrize(("args", "reason"), [
    (["--date", "2026-02-30"], "Error: --date must be a date YYYY-MM-DD, got '2026-02-30'"),
    (["--date", "20260710"], "Error: --date must be a date YYYY-MM-DD, got '20260710'"),
    (["--date", "2026-07-10", "--layout", "nope"],
     "Error: unknown layout 'nope'; shipped: receipts-csv, receipts-fixed"),
    (["--date", "2026-07-10", "--municipality", "130001"], "Error: municipality 130001 is not configured"),
])
def test_the_cli_fails_with_a_one_line_reason_and_writes_nothing(app, tmp_path: Path, args: list[str],  # type: ignore[no-untyped-def]
                                                                 reason: str) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    result = app.test_cli_runner().invoke(cli, ["recon", "export", "--out", str(tmp_path / "r.dat"), *args])

    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [reason]
    assert list(tmp_path.iterdir()) == []
