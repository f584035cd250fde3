"""Every staff report adds up: its rows sum to its totals, and each total is the money in the tables.

One realistic ward day (tests/ward_day.py: card, PayPay, a double payment refunded, agency files
with their remittances, payments made elsewhere, counter sales with a void) is built through the
real services; each report is rendered on its staff page, read back from the HTML, and its
totals are compared with the same figure summed straight from payments, sales, agency reports
or receipt records, never through the report's own code.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from adapters.base import Capability
from domain.calendar import TOKYO
from domain.fiscal import fiscal_year_of, year_start
from gateway.models import (
    AgencyDeposit,
    AgencyReport,
    Assessment,
    Payment,
    PaymentAttempt,
    ReceiptRecord,
    Refund,
    Sale,
    SaleLine,
)
from tests.ward_day import WardDay, build_ward_day, column_sums, log_in, number, table

PAID = ("succeeded", "partially_refunded", "refunded")


@pytest.fixture
def ward(app: Any, session: Session, cipher: Any) -> WardDay:
    return build_ward_day(app, session, cipher)


@pytest.fixture
def acct(client: FlaskClient, ward: WardDay) -> FlaskClient:
    log_in(client, "acct")
    return client


def _window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=TOKYO)
    return start, start + timedelta(days=1)


def _scalar(session: Session, statement: Any) -> int:
    value = session.scalar(statement)
    session.rollback()
    return int(value or 0)


def _page(client: FlaskClient, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, path
    return answer.get_data(as_text=True)


# -- the daily report ---------------------------------------------------------------------------


def _day_payments(session: Session, day: date, *where: Any) -> tuple[int, int, int]:
    start, end = _window(day)
    count, amount, fees = session.execute(
        select(func.count(), func.coalesce(func.sum(Payment.amount), 0), func.coalesce(func.sum(Payment.fee_amount), 0))
        .where(Payment.accepted_at >= start, Payment.accepted_at < end, Payment.status.in_(PAID), *where)).one()
    session.rollback()
    return int(count), int(amount), int(fees)


def _check_daily(client: FlaskClient, session: Session, day: date) -> list[list[str]]:
    rows, totals = table(_page(client, f"/staff/reports/daily?date={day.isoformat()}"), "report")
    assert len(totals) == 1 and totals[0][0] == "合計"
    assert column_sums(rows, range(1, 5)) == [number(v) for v in totals[0][1:5]]
    count, received, fees = _day_payments(session, day)
    _, revenue, _ = _day_payments(session, day, Payment.applied)
    assert [number(v) for v in totals[0][1:5]] == [count, revenue, received - revenue, fees]
    assert count > 0
    return rows


def test_the_daily_report_adds_up_to_the_days_payments(acct: FlaskClient, session: Session, ward: WardDay) -> None:
    rows = _check_daily(acct, session, ward.today)

    card = next(row for row in rows if row[0] == "クレジットカード")
    assert number(card[3]) > 0  # the double payment: accepted, not revenue
    assert {row[0] for row in rows} == {"クレジットカード", "PayPay", "窓口 電子マネー・QR"}
    _check_daily(acct, session, ward.agency_days[-1])  # a day of store payments, not reconciled


def test_the_daily_report_opens_on_the_last_reconciled_day_and_says_so(acct: FlaskClient, ward: WardDay) -> None:
    html = _page(acct, "/staff/reports/daily")

    assert f"日次照合 {ward.today.isoformat()}" in html and "（未実行）" not in html
    assert f"照合を最後に実行した日（{ward.today.isoformat()}）を表示しています" in html


# -- receipts by fund and fiscal year ------------------------------------------------------------


def test_the_receipts_report_adds_up_to_every_applied_payment(acct: FlaskClient, session: Session,
                                                              ward: WardDay) -> None:
    rows, totals = table(_page(acct, "/staff/reports/receipts"), "report")

    assert column_sums(rows, range(3, 5)) == [number(v) for v in totals[0][3:5]]
    applied = (Payment.applied, Payment.status.in_(PAID))
    assert number(totals[0][4]) == _scalar(session, select(func.sum(Payment.amount)).where(*applied))
    assert number(totals[0][3]) == _scalar(session, select(func.count()).where(*applied))
    counter = _scalar(session, select(func.sum(SaleLine.amount)).join(Payment, Payment.sale_id == SaleLine.sale_id)
                      .where(*applied))
    certificates = [row for row in rows if row[0] == "51"]
    assert counter > 0 and sum(number(row[4]) for row in certificates) == counter
    assert {row[2] for row in rows} <= {"2026", str(ward.today.year - (ward.today.month < 4))}  # no "2,026"


# -- remittances --------------------------------------------------------------------------------


def test_the_remittances_report_adds_up_to_the_agency_data_and_the_providers_payouts(
        app: Any, acct: FlaskClient, session: Session, ward: WardDay) -> None:
    html = _page(acct, "/staff/reports/remittances")
    rows, totals = table(html, "report")

    assert column_sums(rows, range(3, 7)) == [number(v) for v in totals[0][3:7]]
    agency_expected = _scalar(session, select(func.sum(AgencyReport.amount)).where(
        AgencyReport.final_import_id.is_not(None), AgencyReport.remittance_on.is_not(None)))
    agency_count = _scalar(session, select(func.count()).select_from(AgencyReport).where(
        AgencyReport.final_import_id.is_not(None), AgencyReport.remittance_on.is_not(None)))
    deposits = _scalar(session, select(func.sum(AgencyDeposit.amount)).where(AgencyDeposit.adapter.is_not(None)))
    start, end = _window(ward.today)
    recorded = payouts = providers = 0
    adapters = app.extensions["kokin.adapters"]
    settled = Capability.SETTLEMENT_REPORT
    for name in [name for name, adapter in adapters.items()  # the providers whose settlement the run reads
                 if adapter.capabilities & settled and not adapter.capabilities & Capability.TERMINAL]:
        recorded += _scalar(session, select(func.sum(PaymentAttempt.amount))
                            .join(Payment, Payment.id == PaymentAttempt.payment_id)
                            .where(PaymentAttempt.adapter == name, PaymentAttempt.status == "succeeded",
                                   Payment.status.in_(PAID), Payment.accepted_at >= start, Payment.accepted_at < end))
        providers += _scalar(session, select(func.count()).select_from(PaymentAttempt)
                             .join(Payment, Payment.id == PaymentAttempt.payment_id)
                             .where(PaymentAttempt.adapter == name, PaymentAttempt.status == "succeeded",
                                    Payment.status.in_(PAID), Payment.accepted_at >= start,
                                    Payment.accepted_at < end))
        payouts += sum(p.amount - p.fee for p in adapters[name].settlement_report(ward.today))
    assert agency_expected > 0 and recorded > 0
    assert [number(v) for v in totals[0][3:7]] == [agency_count + providers, agency_expected + recorded,
                                                   deposits + payouts, deposits + payouts - agency_expected - recorded]
    assert '<svg' in html and 'class="chart"' in html  # like every report, a chart


# -- usage by channel, fund and month -----------------------------------------------------------


def test_the_usage_report_adds_up_to_the_applied_payments_and_the_instalments_paid_elsewhere(
        acct: FlaskClient, session: Session, ward: WardDay) -> None:
    year = fiscal_year_of(ward.today)
    rows, totals = table(_page(acct, f"/staff/reports/usage?fy={year}"), "usage-trend")

    assert column_sums(rows, range(3, 5)) == [number(v) for v in totals[0][3:5]]
    begins, ends = year_start(year), year_start(year + 1)
    applied = (Payment.applied, Payment.status.in_(PAID), Payment.accepted_at >= _window(begins)[0],
               Payment.accepted_at < _window(ends)[0])
    elsewhere = (Assessment.closed_reason == "paid_elsewhere", Assessment.closed_on >= begins,
                 Assessment.closed_on < ends)
    assert number(totals[0][4]) == _scalar(session, select(func.sum(Payment.amount)).where(*applied)) + _scalar(
        session, select(func.sum(Assessment.amount)).where(*elsewhere))
    assert number(totals[0][3]) == _scalar(session, select(func.count()).where(*applied)) + _scalar(
        session, select(func.count()).select_from(Assessment).where(*elsewhere))
    assert {row[2] for row in rows} >= {"金融機関窓口", "口座振替", "窓口 電子マネー", "PayPay"}


# -- counter revenue (歳入日計) ---------------------------------------------------------------------


def test_the_counter_revenue_page_adds_up_to_the_days_sales_less_the_void(
        acct: FlaskClient, session: Session, ward: WardDay) -> None:
    rows, totals = table(_page(acct, f"/staff/revenue?date={ward.today.isoformat()}"), "revenue-lines")

    assert column_sums(rows, range(6, 8)) == [number(v) for v in totals[0][-2:]]
    sold = select(func.sum(SaleLine.amount)).join(Sale, Sale.id == SaleLine.sale_id).where(
        Sale.business_date == ward.today, Sale.status.in_(("paid", "voided")))
    pieces = select(func.sum(SaleLine.quantity)).join(Sale, Sale.id == SaleLine.sale_id)
    given_back = _scalar(session, select(func.sum(Refund.amount)).join(Payment, Payment.id == Refund.payment_id)
                         .where(Payment.sale_id.is_not(None), Refund.status == "succeeded"))
    voided_pieces = _scalar(session, pieces.where(Sale.status == "voided"))
    assert given_back > 0 and voided_pieces > 0
    assert number(totals[0][-1]) == _scalar(session, sold) - given_back
    assert number(totals[0][-2]) == _scalar(session, pieces.where(Sale.business_date == ward.today)) - voided_pieces


# -- the receipts feed and its balance -----------------------------------------------------------


def test_the_feed_balance_adds_up_to_the_money_accepted_and_the_records_written(
        acct: FlaskClient, session: Session, ward: WardDay) -> None:
    rows, totals = table(_page(acct, "/staff/feed"), "balance")

    figures = range(1, 9)
    assert column_sums(rows, figures) == [number(v) for v in totals[0][1:9]]
    count, accepted, cancelled, refunded, expected, sent, unsent, difference = (number(v) for v in totals[0][1:9])
    unknown = (AgencyReport.payment_id.is_(None),)
    assert count == _scalar(session, select(func.count()).where(Payment.accepted_at.is_not(None))) + _scalar(
        session, select(func.count()).select_from(AgencyReport).where(*unknown))
    assert accepted == _scalar(session, select(func.sum(Payment.amount)).where(Payment.accepted_at.is_not(None))) + \
        _scalar(session, select(func.sum(AgencyReport.amount)).where(*unknown))
    assert cancelled == _scalar(session, select(func.sum(Payment.amount)).where(Payment.status == "cancelled")) + \
        _scalar(session, select(func.sum(AgencyReport.amount)).where(*unknown,
                                                                      AgencyReport.cancel_import_id.is_not(None)))
    # A refund gives back revenue up to the payment's amount; beyond it, the system usage fee.
    refunds = session.execute(select(Payment.refunded_amount, Payment.amount).where(
        Payment.accepted_at.is_not(None), Payment.status != "cancelled", Payment.refunded_amount > 0)).all()
    session.rollback()
    assert refunded == sum(min(given, amount) for given, amount in refunds) > 0
    signed = case((ReceiptRecord.kind == "reversal", -ReceiptRecord.amount), else_=ReceiptRecord.amount)
    assert sent + unsent == _scalar(session, select(func.sum(signed)))
    assert unsent > 0 and sent > 0
    assert expected == accepted - cancelled - refunded and difference == 0
