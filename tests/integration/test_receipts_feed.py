"""The receipts feed for the core system: every yen, in files sent in sequence, from the real services."""
from __future__ import annotations

import hashlib
import os
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select, update

from adapters.agency.simulator import StorePayment, files_by_day, schedule
from domain import layouts
from domain.layouts import LayoutError
from gateway.cli import cli
from gateway.db import transaction
from gateway.models import (
    Assessment,
    FundType,
    OutboundFile,
    Payment,
    ReceiptQueue,
    ReceiptRecord,
    ReconException,
    Refund,
    Slip,
    receipt_claims,
)
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.agency_import import import_agency_file
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.slips import issue_slips
from reconciliation import receipts
from reconciliation.balance import balance
from reconciliation.receipts import (
    LAYOUT_DIR,
    ReceiptsNotWritable,
    export_next,
    export_receipts,
    load_receipts_layout,
    resend,
)
from tests.card import open_card_payment, pay_by_card
from tests.rows import by_id

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
    _row("13-2026-0000000006", "13", 2026, 1, 4_000, date(2026, 7, 31)),  # not paid by the fixture
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
    """As if the provider had accepted the payment at `accepted_at`: the payment and its record."""
    with transaction(session):
        session.execute(update(Payment).where(Payment.id == payment_id).values(accepted_at=accepted_at))
        session.execute(update(ReceiptRecord).where(ReceiptRecord.payment_id == payment_id)
                        .values(paid_at=accepted_at, business_date=accepted_at.date()))


def _read(layout_name: str, data: bytes) -> list[layouts.Record]:
    records, errors = layouts.read(load_receipts_layout(layout_name), data)
    assert errors == []
    return records


def _fields(record: layouts.Record) -> dict[str, Any]:
    return {name: value for name, value in record.values.items() if name != "filler"}


def _record(ids: dict[str, int], session, key: str, kind: str, channel: str, accepted: datetime, *,  # type: ignore[no-untyped-def]
            sequence: int = 1, reason: str = "", booked: int = 2026, payment: str | None = None) -> dict[str, Any]:
    row = next(r for r in ROWS if r["assessment_id"] == key)
    journal = session.scalar(select(ReceiptRecord.id).where(ReceiptRecord.payment_id == ids[payment or key],
                                                            ReceiptRecord.kind == kind))
    return {"sequence": sequence, "record_id": f"{CODE}-{journal:012d}", "record_kind": kind, "reverses": "",
            "municipality_code": CODE, "assessment_id": key, "fund_code": row["fund_code"],
            "fiscal_year": row["fiscal_year"], "installment": row["installment"], "amount": row["amount"],
            "principal": row["amount"], "late_fee": 0, "dunning_fee": 0, "paid_on": accepted.date(),
            "paid_time": accepted.time().replace(tzinfo=None), "remitted_on": None, "booked_fiscal_year": booked,
            "channel": channel, "reason": reason}


def _expected(ids: dict[str, int], session) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The first file: every record, in journal order (the order the money was booked)."""
    return [_record(ids, session, "01-2026-0000000001", "receipt", "card", _at(DAY, 9, 15, 30)),
            _record(ids, session, "12-2026-0000000005", "receipt", "card", _at(DAY, 9, 15, 30)),
            _record(ids, session, "01-2026-0000000003", "receipt", "card", _at(date(2026, 7, 9), 23, 59, 59)),
            _record(ids, session, "11-2025-0000000004", "receipt", "card", _at(date(2026, 5, 31), 23, 30),
                    booked=2025),  # due in FY2025, paid by its closing cut-off: FY2025
            _record(ids, session, "02-2026-0000000002", "receipt", "agency", _at(DAY, 0)),
            _record(ids, session, "01-2026-0000000001", "overpayment", "agency", _at(DAY, 12),
                    reason="double_payment", payment="overpaid")]


def test_the_next_file_holds_every_record_not_sent_whatever_its_date_and_then_there_is_nothing_new(  # type: ignore[no-untyped-def]
        session, payments) -> None:
    card = by_id(session, Payment, payments["01-2026-0000000001"])
    assert card.fee_amount > 0 and card.applied  # the card fee was charged on top, and is in no amount

    first = export_next(session, CODE, "receipts-csv", actor="test", today=date(2026, 7, 11))

    assert first is not None and (first.sequence, first.count) == (1, 6)
    assert first.total == 12_300 + 31_000 + 5_000 + 9_900 + 7_200 + 12_300
    lines = first.data.split(b"\r\n")
    assert lines[0] == (b"sequence,record_id,record_kind,reverses,municipality_code,assessment_id,fund_code,"
                        b"fiscal_year,installment,amount,principal,late_fee,dunning_fee,paid_on,paid_time,"
                        b"remitted_on,booked_fiscal_year,channel,reason") and lines[-1] == b""
    assert [_fields(r) for r in _read("receipts-csv", first.data)] == _expected(payments, session)
    assert first.sha256 == hashlib.sha256(first.data).hexdigest()
    assert export_next(session, CODE, "receipts-csv", actor="test") is None  # nothing new: no file
    assert session.scalar(select(func.count()).select_from(OutboundFile)) == 1


def test_the_fixed_layout_carries_the_sequence_and_a_trailer_of_count_and_net_total(session, payments) -> None:  # type: ignore[no-untyped-def]
    result = export_next(session, CODE, "receipts-fixed", actor="test", today=date(2026, 7, 11))

    assert result is not None
    assert all(len(line) == 200 for line in result.data.split(b"\r\n")[:-1])
    header, *data, trailer, end = _read("receipts-fixed", result.data)
    assert _fields(header) == {"sequence": 1, "created_on": date(2026, 7, 11), "municipality_code": CODE}
    assert [_fields(r)["record_kind"] for r in data] == ["receipt"] * 5 + ["overpayment"]
    assert _fields(trailer) == {"record_count": 6, "total_amount": result.total, "reversal_count": 0,
                                "reversal_amount": 0}
    assert end.kind == "end"


def test_a_double_payment_goes_to_the_core_system_as_an_overpayment_not_back_through_the_provider(  # type: ignore[no-untyped-def]
        session, payments) -> None:
    exception = session.scalar(select(ReconException).where(ReconException.kind == "double_payment"))
    assert exception.status == "open" and exception.payment_id == payments["overpaid"]
    assert session.scalar(select(func.count()).select_from(Refund)) == 0  # no refund through the store or card

    export_next(session, CODE, actor="test")

    session.refresh(exception)
    assert (exception.status, exception.resolution) == ("resolved", "handed_to_core_system")


def test_a_fund_whose_policy_refunds_through_the_provider_requests_the_refund_and_its_reversal_follows(  # type: ignore[no-untyped-def]
        app, session, payments) -> None:
    from gateway.services.refunds import decide_refund, execute_refund

    with transaction(session):
        session.execute(update(FundType).where(FundType.code == "13").values(overpayment_policy="provider_refund"))
    slip = session.scalar(select(Slip).join(Assessment).where(Assessment.source_key == "13-2026-0000000006"))
    stripe = app.extensions["kokin.adapters"]["stripe"]
    opened = [open_card_payment(app, session, slip) for _ in range(2)]  # two tabs: both pay
    for started in opened:
        stripe.simulator.simulate_payment(started.attempt.provider_ref, "paid")
        settle_attempt(session, "stripe", stripe.fetch_status(started.attempt.provider_ref), actor="test")
    second = opened[1].payment.id
    refund = session.scalar(select(Refund).where(Refund.payment_id == second))
    assert refund is not None and refund.amount == 4_000
    export_next(session, CODE, actor="test")
    exception = session.scalar(select(ReconException).where(ReconException.payment_id == second))
    assert exception.status == "open"  # a refund is under way: not handed over

    decide_refund(session, refund.municipality_id, refund.id, approve=True, decided_by="approver")
    execute_refund(session, app.extensions["kokin.adapters"], refund.municipality_id, refund.id, actor="approver")
    second_file = export_next(session, CODE, "receipts-csv", actor="test")

    assert second_file is not None
    (reversal,) = [_fields(r) for r in _read("receipts-csv", second_file.data)]
    overpayment = session.scalar(select(ReceiptRecord).where(ReceiptRecord.payment_id == second))
    assert (reversal["record_kind"], reversal["reason"], reversal["amount"]) == ("reversal", "refunded", 4_000)
    assert reversal["reverses"] == f"{CODE}-{overpayment.id:012d}" and overpayment.kind == "overpayment"
    assert balance(session, CODE).difference == 0


def test_a_preliminary_cancelled_after_its_receipt_was_sent_is_a_reversal_in_the_next_file(  # type: ignore[no-untyped-def]
        app, session, payments) -> None:
    first = export_next(session, CODE, "receipts-csv", actor="test")
    slip = session.scalar(select(Slip).join(Assessment).where(Assessment.source_key == "02-2026-0000000002"))
    agency = app.extensions["kokin.agencies"]["agency-csv"]
    cancel = [s for s in schedule([StorePayment(slip.barcode, _at(DAY, 0), "0001234", "820",
                                                ("preliminary", "cancel"))]) if s.kind == "cancel"]
    for data in files_by_day(agency, cancel, client_code="13107").values():
        import_agency_file(session, agency, data, municipality_code=CODE, filename="torikeshi.csv", source="test",
                           actor="test")

    second = export_next(session, CODE, "receipts-csv", actor="test")

    assert first is not None and second is not None and second.sequence == 2
    (reversal,) = [_fields(r) for r in _read("receipts-csv", second.data)]
    receipt = session.scalar(select(ReceiptRecord).where(ReceiptRecord.payment_id == payments["02-2026-0000000002"],
                                                         ReceiptRecord.kind == "receipt"))
    assert reversal["record_kind"] == "reversal" and reversal["reason"] == "preliminary_cancelled"
    assert reversal["reverses"] == f"{CODE}-{receipt.id:012d}" and reversal["amount"] == 7_200 == second.total * -1
    payment = by_id(session, Payment, payments["02-2026-0000000002"])
    session.refresh(slip)
    assert (payment.status, payment.applied, slip.status) == ("cancelled", False, "issued")  # payable again
    assert resend(session, CODE, 1).data == first.data  # the sent file is never rewritten
    reversal_day = session.scalar(select(ReceiptRecord.business_date).where(ReceiptRecord.kind == "reversal"))
    *_, trailer, _ = _read("receipts-fixed", export_receipts(session, CODE, reversal_day, "receipts-fixed").data)
    assert (_fields(trailer)["reversal_count"], _fields(trailer)["reversal_amount"]) == (1, 7_200)
    assert _fields(trailer)["total_amount"] == -7_200  # the day's records net: the reversal alone
    assert balance(session, CODE).difference == 0


def test_a_resend_writes_a_sent_file_byte_for_byte_after_later_files(app, session, payments, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runner = app.test_cli_runner()
    first_out, again_out = tmp_path / "r1.csv", tmp_path / "r1-again.csv"
    first = runner.invoke(cli, ["recon", "export", "--out", str(first_out)])
    slip = session.scalar(select(Slip).join(Assessment).where(Assessment.source_key == "13-2026-0000000006"))
    _pay_by_card(app, session, slip)  # money after the first file: in the second
    second = runner.invoke(cli, ["recon", "export", "--out", str(tmp_path / "r2.csv")])
    nothing = runner.invoke(cli, ["recon", "export", "--out", str(tmp_path / "r3.csv")])
    again = runner.invoke(cli, ["recon", "export", "--resend", "1", "--out", str(again_out)])

    assert first.exit_code == second.exit_code == nothing.exit_code == again.exit_code == 0, first.output
    assert "file 1, 6 records" in first.stdout and "file 2, 1 records" in second.stdout
    assert "nothing new to send" in nothing.stdout and not (tmp_path / "r3.csv").exists()
    assert again_out.read_bytes() == first_out.read_bytes()
    digest = hashlib.sha256(first_out.read_bytes()).hexdigest()
    assert (tmp_path / "r1-again.csv.sha256").read_text("ascii") == f"{digest}  r1-again.csv\n"
    missing = runner.invoke(cli, ["recon", "export", "--resend", "9", "--out", str(tmp_path / "r9.csv")])
    assert missing.exit_code != 0 and "receipts file 9 of municipality 131075 was never sent" in missing.output


def test_a_review_by_date_shows_the_records_of_that_day_and_marks_nothing_sent(session, payments) -> None:  # type: ignore[no-untyped-def]
    review = export_receipts(session, CODE, DAY, "receipts-csv")

    assert [_fields(r)["record_kind"] for r in _read("receipts-csv", review.data)] == ["receipt"] * 3 + ["overpayment"]
    assert {_fields(r)["sequence"] for r in _read("receipts-csv", review.data)} == {0}
    assert review.data == export_receipts(session, CODE, DAY, "receipts-csv").data
    assert export_next(session, CODE, actor="test").count == 6  # type: ignore[union-attr]


def test_a_wards_layout_that_would_cut_a_value_is_refused_rather_than_written(session, payments,  # type: ignore[no-untyped-def]
                                                                              tmp_path: Path) -> None:
    short = (LAYOUT_DIR / "receipts-csv.toml").read_text("utf-8")
    ward = tmp_path / "ward.toml"
    ward.write_text(short.replace('name = "assessment_id", type = "text", max_bytes = 32',
                                  'name = "assessment_id", type = "text", max_bytes = 8'), "utf-8")
    with pytest.raises(ReceiptsNotWritable, match="assessment_id"):
        export_next(session, CODE, str(ward), actor="test")
    assert session.scalar(select(func.count()).select_from(OutboundFile)) == 0  # nothing sent, nothing claimed
    queued = select(func.count()).select_from(ReceiptQueue)
    assert session.scalar(queued) == session.scalar(select(func.count()).select_from(ReceiptRecord)) == 6

    ward.write_text(short.replace('name = "channel"', 'name = "payer_name"'), "utf-8")
    with pytest.raises(LayoutError, match="no field payer_name"):
        export_next(session, CODE, str(ward), actor="test")


def test_the_balance_lists_each_yen_that_is_not_in_the_feed(app, session, payments) -> None:  # type: ignore[no-untyped-def]
    assert balance(session, CODE).difference == 0
    with transaction(session):  # a record lost: what the balance exists to catch
        lost = select(ReceiptRecord.id).where(ReceiptRecord.payment_id == payments["01-2026-0000000003"])
        session.execute(delete(ReceiptQueue).where(ReceiptQueue.record_id.in_(lost)))
        session.execute(delete(ReceiptRecord).where(ReceiptRecord.payment_id == payments["01-2026-0000000003"]))

    report = balance(session, CODE)
    result = app.test_cli_runner().invoke(cli, ["recon", "balance"])

    assert report.difference == 5_000
    assert [(d.subject, d.yen) for d in report.differences] == [(f"payment:{payments['01-2026-0000000003']}", 5_000)]
    assert result.exit_code == 1 and "difference: 5,000 yen" in result.output
    card = next(c for c in report.channels if c.channel == "card")
    assert (card.count, card.accepted, card.difference) == (4, 12_300 + 31_000 + 5_000 + 9_900, 5_000)


def test_the_balance_of_a_date_range_takes_the_money_accepted_in_it(app, session, payments) -> None:  # type: ignore[no-untyped-def]
    export_next(session, CODE, actor="test")
    result = app.test_cli_runner().invoke(cli, ["recon", "balance", "--from", "2026-07-10", "--to", "2026-07-10"])

    assert result.exit_code == 0, result.output
    report = balance(session, CODE, DAY, DAY)
    assert sum(c.count for c in report.channels) == 4 and report.difference == 0
    assert sum(c.sent for c in report.channels) == 12_300 + 31_000 + 7_200 + 12_300
    assert "difference: 0 yen (every yen is in the receipts feed once)" in result.output


@pytest.mark.parametrize(("args", "reason"), [
    (["--date", "2026-02-30"], "Error: --date must be a date YYYY-MM-DD, got '2026-02-30'"),
    (["--date", "20260710"], "Error: --date must be a date YYYY-MM-DD, got '20260710'"),
    (["--layout", "nope"], "Error: unknown layout 'nope'; shipped: receipts-csv, receipts-fixed"),
    (["--municipality", "130001"], "Error: municipality 130001 is not configured"),
    (["--resend", "0"], "Error: Invalid value for '--resend': 0 is not in the range x>=1."),
])
def test_the_cli_fails_with_a_one_line_reason_and_writes_nothing(app, tmp_path: Path, args: list[str],  # type: ignore[no-untyped-def]
                                                                 reason: str) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    result = app.test_cli_runner().invoke(cli, ["recon", "export", "--out", str(tmp_path / "r.dat"), *args])

    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == reason
    assert list(tmp_path.iterdir()) == []


def test_the_nightly_job_writes_the_next_receipts_file_into_the_instance_folder(app, payments) -> None:  # type: ignore[no-untyped-def]
    from gateway.scheduler.jobs import JOBS

    job = JOBS["receipts-export"]
    assert job.cron == {"hour": 6, "minute": 30}  # after the agency pull at 06:00: its 速報 are in the file
    first = job.run(app, DAY)
    again = job.run(app, DAY)

    assert first[CODE]["sequence"] == 1 and first[CODE]["records"] == 6 and again == {CODE: "nothing new"}
    written = Path(app.instance_path) / "outbound" / CODE / first[CODE]["file"]
    assert written.name == "receipts-000001.csv"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == first[CODE]["sha256"]
    assert written.with_name(written.name + ".sha256").is_file()


def test_a_store_double_payment_goes_to_the_core_system_even_where_the_fund_refunds_through_providers(  # type: ignore[no-untyped-def]
        app, session, payments) -> None:
    with transaction(session):
        session.execute(update(FundType).where(FundType.code == "13").values(overpayment_policy="provider_refund"))
    slip = session.scalar(select(Slip).join(Assessment).where(Assessment.source_key == "13-2026-0000000006"))
    _pay_at_a_store(app, session, [StorePayment(slip.barcode, _at(DAY, 8), "0001234", "820"),
                                   StorePayment(slip.barcode, _at(DAY, 9), "0005678", "010")])

    assert session.scalar(select(func.count()).select_from(Refund)) == 0  # a store cannot give it back
    export_next(session, CODE, actor="test")
    exception = session.scalar(select(ReconException).where(ReconException.kind == "double_payment",
                                                            ReconException.amount == 4_000))
    assert (exception.status, exception.resolution) == ("resolved", "handed_to_core_system")


def test_a_receipt_splits_its_amount_into_principal_and_the_instalments_additions(app, session, cipher) -> None:  # type: ignore[no-untyped-def]
    overdue = dict(_row("01-2026-0000000007", "01", 2026, 2, 13_900, date(2026, 8, 31)), late_fee=1_000,
                   dunning_fee=100)
    import_ledger(session, cipher, ledger_file_bytes([overdue], "kokin-csv", date(2026, 4, 1)), filename="d.csv")
    issue_slips(session, CODE)
    _pay_by_card(app, session, session.scalar(select(Slip)))

    result = export_next(session, CODE, actor="test")

    assert result is not None
    [record] = [_fields(r) for r in _read("receipts-csv", result.data) if r.kind == "data"]
    assert (record["record_kind"], record["amount"]) == ("receipt", 13_900)
    assert (record["principal"], record["late_fee"], record["dunning_fee"]) == (12_800, 1_000, 100)


@pytest.mark.parametrize(("amount", "billed", "expected"), [
    (13_900, 13_900, (12_800, 1_000, 100)),  # the billed amount: split as the instalment
    (5_000, 13_900, (5_000, 0, 0)),  # another amount: all principal
    (13_900, None, (13_900, 0, 0)),  # no instalment (unidentified, a counter sale)
])
def test_money_splits_as_its_instalment_only_when_it_is_the_billed_amount(amount, billed, expected) -> None:  # type: ignore[no-untyped-def]
    from domain.eltax import split_paid

    assert split_paid(amount, billed, 1_000, 100) == expected
    assert sum(expected) == amount


@pytest.mark.skipif(os.environ.get("KOKIN_TEST_DATABASE", "sqlite") != "postgresql",
                    reason="on SQLite the export holds the write lock: no payment commits while it reads")
def test_a_payment_committed_while_an_export_reads_stays_queued_for_the_next_file(  # type: ignore[no-untyped-def]
        app, database, session, payments, monkeypatch) -> None:
    late = session.scalar(select(Slip).join(Assessment, Assessment.id == Slip.assessment_id)
                          .where(Assessment.source_key == "13-2026-0000000006"))
    read = receipts.receipts_where
    paid: list[int] = []

    def read_then_a_payment_commits(*args: Any) -> Any:
        found = read(*args)
        other = database.session()  # another connection: a resident paying at this moment
        try:
            paid.append(_pay_by_card(app, other, other.get(Slip, (late.id, late.municipality_id))))
        finally:
            other.close()
        return found

    monkeypatch.setattr(receipts, "receipts_where", read_then_a_payment_commits)
    first = export_next(session, CODE, "receipts-csv", actor="test")
    monkeypatch.undo()

    assert first is not None and first.count == 6 and paid  # the payment came in during the export
    record = session.scalar(select(ReceiptRecord.id).where(ReceiptRecord.payment_id == paid[0]))
    assert session.scalar(select(ReceiptQueue.record_id).where(ReceiptQueue.record_id == record)) == record
    assert session.scalar(select(func.count()).select_from(receipt_claims)) == 0  # the claim ended with its file
    second = export_next(session, CODE, "receipts-csv", actor="test")
    assert second is not None and (second.sequence, second.count, second.total) == (2, 1, 4_000)
