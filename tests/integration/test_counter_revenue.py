"""The counter revenue feed for financial accounting: sales, voids and refunds from the real services.

Sales are made at the sandbox Square Terminal and voided or refunded through the real
services; the journal's records are then dated as if the days had passed (the services
date them by the clock), as the receipts feed's tests do.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain import layouts
from domain.layouts import LayoutError
from gateway.cli import cli
from gateway.db import transaction
from gateway.errors import RevenueNotWritable
from gateway.models import OutboundFile, Payment, ReceiptRecord, Refund, Sale, StaffUser
from gateway.scheduler.jobs import JOBS
from gateway.services.refunds import decide_refund, execute_refund
from gateway.services.sales import SaleLineRequest, void_sale
from gateway.services.staff_accounts import create_user
from reconciliation.counter_revenue import (
    export_day,
    export_next,
    load_revenue_layout,
    municipality_id_of,
    resend,
    revenue_journal,
    sent_files,
    written_after_sending,
)
from reconciliation.receipts import export_next as export_receipts_next
from reconciliation.receipts import load_receipts_layout
from tests.counter import paid_sale
from tests.rows import by_id
from tests.staff import log_in

CODE = "131075"
PASSWORD = "revenue-pass-2026"  # noqa: S105 - throwaway test accounts
TODAY = datetime.now(ZoneInfo("Asia/Tokyo")).date()
SALE_DAY, REFUND_DAY = TODAY - timedelta(days=3), TODAY - timedelta(days=2)
HEADER = "sequence,business_date,fund_code,revenue_item,fee_item_code,fee_item_name,tender,count,amount"
FEES = "使用料及手数料/手数料/総務手数料"


@pytest.fixture
def staff(session: Session) -> dict[str, StaffUser]:
    return {name: create_user(session, CODE, name, role, PASSWORD, counter_code="resident", actor="test")
            for name, role in [("clerk", "counter_staff"), ("super", "counter_supervisor"), ("acct", "accounting")]}


def _paid_sale(app, session: Session, clerk: StaffUser, brand: str, lines: list[SaleLineRequest],  # type: ignore[no-untyped-def]
               day: date) -> int:
    return paid_sale(app, session, clerk, lines, brand=brand, business_date=day)


def _dated(session: Session, sale_id: int, kind: str, day: date) -> None:
    """As if the sale's money had been accepted (receipt) or given back (reversal) on `day`."""
    payment = select(Payment.id).where(Payment.sale_id == sale_id).scalar_subquery()
    with transaction(session):
        changed = session.execute(update(ReceiptRecord).where(ReceiptRecord.payment_id == payment,
                                                              ReceiptRecord.kind == kind)
                                  .values(business_date=day).execution_options(synchronize_session=False))
        assert changed.rowcount  # type: ignore[attr-defined]


def _refund_later(app, session: Session, staff: dict[str, StaffUser], sale_id: int, day: date) -> None:  # type: ignore[no-untyped-def]
    """Void a sale on a later day: a refund request, approved by accounting, carried out at Square."""
    adapters = app.extensions["kokin.adapters"]
    ward = staff["super"].municipality_id
    assert void_sale(session, adapters, ward, sale_id, supervisor=staff["super"],
                     today=day).status == "refund_requested"
    refund_id = session.scalar(select(Refund.id).join(Payment, Payment.id == Refund.payment_id)
                               .where(Payment.sale_id == sale_id))
    session.rollback()
    decide_refund(session, ward, refund_id, approve=True, decided_by="acct")
    assert execute_refund(session, adapters, ward, refund_id, actor="acct").status == "succeeded"


@pytest.fixture
def days(app, session: Session, staff: dict[str, StaffUser]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Three sales on SALE_DAY: one kept, one voided the same day, one refunded on REFUND_DAY."""
    adapters = app.extensions["kokin.adapters"]
    clerk = staff["clerk"]
    kept = _paid_sale(app, session, clerk, "FELICA_ID",
                      [SaleLineRequest("juminhyo", 2), SaleLineRequest("inkan", 1)], SALE_DAY)
    voided = _paid_sale(app, session, clerk, "QR_CODE", [SaleLineRequest("koseki-zenbu", 1)],
                        SALE_DAY)
    assert void_sale(session, adapters, clerk.municipality_id, voided, supervisor=staff["super"],
                     today=SALE_DAY).status == "voided"
    refunded = _paid_sale(app, session, clerk, "FELICA_QUICPAY", [SaleLineRequest("juminhyo", 1)], SALE_DAY)
    _refund_later(app, session, staff, refunded, REFUND_DAY)
    for sale_id in (kept, voided, refunded):
        _dated(session, sale_id, "receipt", SALE_DAY)
    _dated(session, voided, "reversal", SALE_DAY)
    _dated(session, refunded, "reversal", REFUND_DAY)
    return {"kept": kept, "voided": voided, "refunded": refunded}


def _lines(data: bytes) -> list[str]:
    text = data.decode("cp932")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")  # CRLF only
    return text.split("\r\n")[:-1]


FIRST_FILE = [
    HEADER,
    f"1,{SALE_DAY},51,{FEES},inkan,印鑑登録証明書,FELICA_ID,1,300",
    f"1,{SALE_DAY},51,{FEES},juminhyo,住民票の写し,FELICA_ID,2,600",
    f"1,{SALE_DAY},51,{FEES},juminhyo,住民票の写し,FELICA_QUICPAY,1,300",
    f"1,{SALE_DAY},51,{FEES},koseki-zenbu,戸籍全部事項証明,QR_CODE,1,450",
    f"1,{SALE_DAY},51,{FEES},koseki-zenbu,戸籍全部事項証明,QR_CODE,-1,-450",
    f"1,{REFUND_DAY},51,{FEES},juminhyo,住民票の写し,FELICA_QUICPAY,-1,-300",
]


def test_the_next_file_holds_every_closed_day_with_voids_and_refunds_on_the_day_the_money_went_back(
        session: Session, days: dict[str, int]) -> None:
    first = export_next(session, CODE, actor="test")

    assert first is not None and first.sequence == 1
    assert _lines(first.data) == FIRST_FILE
    assert (first.count, first.total) == (6, 900) and first.sha256 == hashlib.sha256(first.data).hexdigest()
    records, errors = layouts.read(load_revenue_layout("counter-revenue-csv"), first.data)
    assert errors == [] and [r.values["amount"] for r in records] == [300, 600, 300, 450, -450, -300]
    kept = session.scalar(select(OutboundFile).where(OutboundFile.feed == "counter_revenue"))
    assert kept is not None and (kept.sequence, kept.record_count, kept.total_amount) == (1, 6, 900)
    (listed,) = sent_files(session, kept.municipality_id)
    assert (listed.first_day, listed.last_day, listed.sha256) == (SALE_DAY, TODAY - timedelta(days=1), first.sha256)


def test_nothing_new_writes_no_file_and_a_day_not_over_waits_for_the_next(
        app, session: Session, staff: dict[str, StaffUser], days: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    assert export_next(session, CODE, actor="test") is not None
    assert export_next(session, CODE, actor="test") is None  # the same days again: nothing new

    today = _paid_sale(app, session, staff["clerk"], "FELICA_ID", [SaleLineRequest("kazei", 1)], TODAY)
    assert export_next(session, CODE, actor="test") is None  # today is not over
    second = export_next(session, CODE, actor="test", through=TODAY)  # as the night after

    assert second is not None and second.sequence == 2
    assert _lines(second.data) == [HEADER, f"2,{TODAY},51,{FEES},kazei,課税・非課税証明書,FELICA_ID,1,300"]
    assert by_id(session, Sale, today) is not None


def test_a_later_refund_of_a_sent_day_goes_on_the_refunds_day_and_a_resend_is_byte_for_byte(
        app, session: Session, staff: dict[str, StaffUser], days: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    first = export_next(session, CODE, actor="test")
    assert first is not None
    later = _paid_sale(app, session, staff["clerk"], "FELICA_ID", [SaleLineRequest("joseki", 1)], TODAY)
    _refund_later(app, session, staff, later, TODAY + timedelta(days=1))
    _dated(session, later, "reversal", TODAY + timedelta(days=1))
    second = export_next(session, CODE, actor="test", through=TODAY + timedelta(days=1))

    assert second is not None and second.total == 0
    tomorrow = TODAY + timedelta(days=1)
    assert _lines(second.data)[1:] == [f"2,{TODAY},51,{FEES},joseki,除籍・改製原戸籍,FELICA_ID,1,750",
                                       f"2,{tomorrow},51,{FEES},joseki,除籍・改製原戸籍,FELICA_ID,-1,-750"]
    assert resend(session, CODE, 1).data == first.data  # the sent days never change
    assert resend(session, CODE, 2).data == second.data
    assert export_day(session, CODE, SALE_DAY).data.decode("cp932").count("\r\n") == 6  # header + 5 lines


def test_the_journal_agrees_with_the_receipts_feed_per_day_and_fund(session: Session, days: dict[str, int]) -> None:
    receipts = export_receipts_next(session, CODE, actor="test")
    revenue = export_next(session, CODE, actor="test")

    assert receipts is not None and revenue is not None and receipts.total == revenue.total == 900


def test_a_record_that_is_not_the_sum_of_its_sales_lines_is_refused_not_sent(
        session: Session, days: dict[str, int]) -> None:
    payment = select(Payment.id).where(Payment.sale_id == days["kept"]).scalar_subquery()
    with transaction(session):
        session.execute(update(ReceiptRecord).where(ReceiptRecord.payment_id == payment).values(amount=899))

    refused = f"of {SALE_DAY}, fund 51: the receipts records hold 1,199 yen, the sales' lines 1,200"
    with pytest.raises(RevenueNotWritable, match=refused):
        export_next(session, CODE, actor="test")
    assert session.scalar(select(OutboundFile.id).where(OutboundFile.feed == "counter_revenue")) is None


def test_the_review_of_a_day_is_outside_the_sequence(session: Session, days: dict[str, int]) -> None:
    review = export_day(session, CODE, REFUND_DAY)

    assert _lines(review.data) == [HEADER, f"0,{REFUND_DAY},51,{FEES},juminhyo,住民票の写し,FELICA_QUICPAY,-1,-300"]
    assert revenue_journal(session, municipality_id_of(session, CODE), TODAY, TODAY) == []
    assert export_next(session, CODE, actor="test") is not None  # the review sent nothing


def test_the_command_writes_resends_and_says_when_there_is_nothing(app, session: Session, days: dict[str, int],  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    out, again = tmp_path / "rev1.csv", tmp_path / "rev1-again.csv"

    first = runner.invoke(cli, ["counter", "revenue", "--out", str(out)])
    nothing = runner.invoke(cli, ["counter", "revenue", "--out", str(tmp_path / "rev2.csv")])
    resent = runner.invoke(cli, ["counter", "revenue", "--resend", "1", "--out", str(again)])
    review = runner.invoke(cli, ["counter", "revenue", "--date", SALE_DAY.isoformat(), "--out",
                                 str(tmp_path / "day.csv")])

    assert first.exit_code == nothing.exit_code == resent.exit_code == review.exit_code == 0, first.output
    assert "counter revenue file 1, 6 lines, net 900 yen" in first.stdout
    assert "no counter revenue of closed days to send" in nothing.stdout and not (tmp_path / "rev2.csv").exists()
    assert again.read_bytes() == out.read_bytes()
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (tmp_path / "rev1-again.csv.sha256").read_text("ascii") == f"{digest}  rev1-again.csv\n"
    assert f"5 lines of {SALE_DAY} for review, net 1,200 yen" in review.stdout


@pytest.mark.parametrize(("args", "reason"), [
    (["--resend", "9"], "counter revenue file 9 of municipality 131075 was never sent"),
    (["--date", "2026-13-01"], "--date must be a date YYYY-MM-DD, got '2026-13-01'"),
    (["--date", "2026-07-01", "--resend", "1"], "--date and --resend do not go together"),
    (["--layout", "no-such-layout"], "unknown layout 'no-such-layout'"),
    (["--municipality", "999999"], "999999"),
])
def test_the_command_fails_with_a_one_line_reason(app, tmp_path: Path, args: list[str], reason: str) -> None:  # type: ignore[no-untyped-def]
    result = app.test_cli_runner().invoke(cli, ["counter", "revenue", "--out", str(tmp_path / "x.csv"), *args])

    assert result.exit_code != 0 and reason in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "x.csv").exists()


def test_the_nightly_job_writes_the_next_file_into_the_instance_folder_once(app, days: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    job = JOBS["counter-revenue-export"]
    night = job.business_date(TODAY)

    first = job.run(app, night)
    again = job.run(app, night)

    assert first[CODE]["sequence"] == 1 and first[CODE]["lines"] == 6 and again == {CODE: "nothing new"}
    written = Path(app.instance_path) / "outbound" / CODE / first[CODE]["file"]
    assert hashlib.sha256(written.read_bytes()).hexdigest() == first[CODE]["sha256"]
    assert written.with_name(written.name + ".sha256").is_file()


def _signed_in(client, username: str) -> None:  # type: ignore[no-untyped-def]
    assert log_in(client, username, PASSWORD).status_code == 302


def test_the_staff_page_shows_a_days_journal_and_the_files_sent_with_their_sha256(
        client, session: Session, staff: dict[str, StaffUser], days: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    sent = export_next(session, CODE, actor="test")
    assert sent is not None
    _signed_in(client, "acct")

    page = client.get(f"/staff/revenue?date={REFUND_DAY}")
    download = client.get("/staff/revenue/files/1")

    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "歳入日計" in html and "第1号ファイル" in html
    assert "住民票の写し（取消・返金）" in html and "QUICPay" in html and "-300円" in html
    assert sent.sha256 in html and f"{SALE_DAY}〜{TODAY - timedelta(days=1)}" in html
    assert download.status_code == 200 and download.data == sent.data
    assert client.get("/staff/revenue/files/9").status_code in (302, 404)


def test_counter_staff_cannot_open_the_revenue_page(client, staff: dict[str, StaffUser]) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client, "clerk")

    assert client.get("/staff/revenue").status_code == 403
    assert client.get("/staff/revenue/files/1").status_code == 403


def test_each_feed_offers_only_its_own_shipped_layouts_by_name(app) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LayoutError, match=r"shipped: counter-revenue-csv$"):
        load_revenue_layout("receipts-csv")
    with pytest.raises(LayoutError, match=r"shipped: receipts-csv, receipts-fixed$"):
        load_receipts_layout("counter-revenue-csv")


def test_money_recorded_for_a_day_already_sent_is_shown_not_lost_silently(
        app, client, session: Session, staff: dict[str, StaffUser], days: dict[str, int],  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    first = export_next(session, CODE, actor="test")
    assert first is not None
    municipality_id = municipality_id_of(session, CODE)
    assert written_after_sending(session, municipality_id) == []
    late = _paid_sale(app, session, staff["clerk"], "FELICA_ID", [SaleLineRequest("inkan", 1)], SALE_DAY)
    _dated(session, late, "receipt", SALE_DAY)  # as a terminal outcome settled after the file was sent

    assert written_after_sending(session, municipality_id) == [(1, SALE_DAY, 300)]
    assert export_next(session, CODE, actor="test") is None and resend(session, CODE, 1).data == first.data
    command = app.test_cli_runner().invoke(cli, ["counter", "revenue", "--out", str(tmp_path / "r.csv")])
    assert f"warning: 300 yen of {SALE_DAY} were recorded after file 1" in command.output
    _signed_in(client, "acct")
    assert f"第1号ファイルの対象日 {SALE_DAY}: 300円" in client.get("/staff/revenue").get_data(as_text=True)


def test_the_staff_page_names_a_day_that_does_not_add_up(client, session: Session, staff: dict[str, StaffUser],  # type: ignore[no-untyped-def]
                                                         days: dict[str, int]) -> None:
    payment = select(Payment.id).where(Payment.sale_id == days["kept"]).scalar_subquery()
    with transaction(session):
        session.execute(update(ReceiptRecord).where(ReceiptRecord.payment_id == payment).values(amount=899))
    _signed_in(client, "acct")

    page = client.get(f"/staff/revenue?date={SALE_DAY}")

    assert page.status_code == 200 and "収納データは1,199円、会計の明細は1,200円です" in page.get_data(as_text=True)
