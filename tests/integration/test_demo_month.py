"""`kokin demo --days N` plays the days that ended yesterday one by one through the real services.

Checked on the database afterwards, not on the printed words alone: money recorded on each
day it was paid, the nightly jobs once per date on the night after, a receipts file a night,
every yen of the month in the receipts feed, the clock back on the wall, and a second run
refused without a change.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from domain import clock
from domain.calendar import TOKYO, business_date
from gateway.cli import cli
from gateway.db import utcnow
from gateway.models import (
    AgencyImport,
    Assessment,
    Event,
    JobRun,
    OutboundFile,
    Payment,
    ReceiptRecord,
    ReconException,
    Sale,
    Slip,
)
from tests.staff import log_in

DAYS = 6


@pytest.fixture
def month(app, session, monkeypatch):  # type: ignore[no-untyped-def]
    from gateway.services import payments

    # the played day's business date, not the suite's fixed one (tests/conftest.py)
    monkeypatch.setattr(payments, "business_today", lambda: business_date(utcnow()))
    result = app.test_cli_runner().invoke(cli, ["demo", "--days", str(DAYS), "--payers", "400", "--no-serve"])
    assert result.exit_code == 0, result.output
    last = business_date(utcnow()) - timedelta(days=1)
    return result, [last - timedelta(days=n) for n in reversed(range(DAYS))]


def test_each_day_is_lived_on_its_own_date_and_the_nights_run_once_each(month, session) -> None:  # type: ignore[no-untyped-def]
    result, days = month
    assert not clock.played()
    online = session.scalars(select(Payment.accepted_at).where(Payment.channel.in_(("card", "paypay")),
                                                               Payment.accepted_at.is_not(None))).all()
    paid_on = {moment.astimezone(TOKYO).date() for moment in online}
    assert paid_on <= set(days) and len(paid_on) >= 3  # online payments on several days of the month, none today
    sales = session.scalars(select(Sale.business_date)).all()
    assert sales and set(sales) <= set(days)
    runs = session.execute(select(JobRun.job, JobRun.business_date, JobRun.status, JobRun.attempts, JobRun.started_at)
                           .where(JobRun.job == "reconciliation")).all()
    assert sorted(run.business_date for run in runs) == days  # one reconciliation per day of the month
    for run in runs:
        assert run.status == "succeeded" and run.attempts == 1
        assert run.started_at.astimezone(TOKYO).date() == run.business_date + timedelta(days=1)  # the night after
    receipts = session.scalars(select(OutboundFile.created_at).where(OutboundFile.feed == "receipts")).all()
    nights = sorted(moment.astimezone(TOKYO).date() for moment in receipts)
    assert len(nights) == len(set(nights)) >= DAYS - 1  # at most one file a night
    assert set(nights) <= {day + timedelta(days=1) for day in days}
    files = session.scalars(select(AgencyImport.filename).where(AgencyImport.source == "sandbox")).all()
    assert any(name.startswith("agency-fixed120-") for name in files)
    event_days = {moment.astimezone(TOKYO).date() for moment in session.scalars(select(Event.recorded_at))}
    assert event_days <= {days[0] - timedelta(days=1), *days, days[-1] + timedelta(days=1)}
    assert "difference: 0 yen (every yen is in the receipts feed once)" in result.output
    assert f"nightly job runs: {4 * DAYS} succeeded" in result.output


def test_the_month_prints_each_day_and_plants_what_a_month_brings(month, session) -> None:  # type: ignore[no-untyped-def]
    result, days = month
    table = result.output.split("==> the month, day by day\n", 1)[1].split("==>", 1)[0].splitlines()
    assert [line.split()[0] for line in table[1:]] == [day.isoformat() for day in days]
    planted = result.output.split("==> planted this month", 1)[1]
    for kind in ("unknown_slip 1", "double_payment 1", "payment_on_void_slip 1", "cancelled_by_core_system 3"):
        assert kind in planted
    twice = session.scalars(select(Payment.id).where(Payment.overpaid, Payment.channel.in_(("card", "paypay")))).all()
    assert len(twice) == 1  # the family's second online payment of one slip
    assert session.scalar(select(func.count()).where(ReceiptRecord.payment_id == twice[0],
                                                     ReceiptRecord.kind == "overpayment")) == 1  # for 充当 or 還付
    kinds = set(session.scalars(select(ReconException.kind)))
    assert {"unknown_slip", "payment_on_void_slip", "amount_mismatch"} <= kinds
    paid_elsewhere = session.scalar(select(func.count()).where(Assessment.closed_reason == "paid_elsewhere"))
    assert paid_elsewhere and session.scalar(select(func.count()).where(Assessment.closed_reason == "cancelled")) == 3
    assert f"status feed: {paid_elsewhere:,} instalments paid at banks or by direct debit, 3 cancelled" in result.output


def test_the_staff_screens_open_on_the_month(month, app) -> None:  # type: ignore[no-untyped-def]
    result, days = month
    password = re.search(r"password \(sandbox, shown once\): (\S+)", result.output)
    assert password is not None
    client = app.test_client()
    assert log_in(client, "demo-accounting", password.group(1)).status_code == 302
    daily = client.get("/staff/reports/daily").get_data(as_text=True)
    assert f"照合を最後に実行した日（{days[-1]:%Y-%m-%d}）" in daily  # the month's last night, not an empty today
    feed = client.get("/staff/feed").get_data(as_text=True)
    assert feed.count("receipts") >= 1 and f"{days[-1] + timedelta(days=1):%Y-%m-%d}" in feed


def test_a_second_month_is_refused_on_a_ward_with_slips_and_changes_nothing(month, app, session) -> None:  # type: ignore[no-untyped-def]
    slips = session.scalar(select(func.count()).select_from(Slip))
    events = session.scalar(select(func.count()).select_from(Event))
    again = app.test_cli_runner().invoke(cli, ["demo", "--days", "2", "--no-serve"])
    assert again.exit_code != 0 and "a month is played from an empty ward" in again.output
    assert session.scalar(select(func.count()).select_from(Slip)) == slips
    assert session.scalar(select(func.count()).select_from(Event)) == events
    assert not clock.played()
