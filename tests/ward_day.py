"""A realistic ward day built through the real services, for the report tests.

Earlier days: a ledger imported and its slips issued; the sandbox agency's 速報/確報 files
imported day by day (one store payment made twice) and its remittances deposited; two
instalments reported paid elsewhere by the core system's status feed. Today (Asia/Tokyo, the
day the simulators stamp): a card and a PayPay payment; a slip paid twice by card, the second
payment refunded through Stripe once a second person approves; three counter sales at the
Square terminal, one voided the same day; the receipts feed sent once, then a card payment
not sent yet; the day reconciled.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Assessment, Payment, Slip, StaffUser
from gateway.sandbox.agency import plan_store_payments, run_agency_sandbox
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services.counters import counter_terminals
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import StartedPayment, start_payment
from gateway.services.refunds import decide_refund, execute_refund, request_refund
from gateway.services.sales import SaleLineRequest, void_sale
from gateway.services.slips import issue_slips
from gateway.services.staff_accounts import create_user
from gateway.services.status_import import import_status_changes
from reconciliation.receipts import export_next
from reconciliation.run import reconcile_day
from tests.counter import paid_sale
from tests.rows import by_id
from tests.staff import log_in as staff_log_in

CODE = "131075"
TOKYO = ZoneInfo("Asia/Tokyo")
AGENCY = "agency-fixed120"
PASSWORD = "report-pass-2026"  # noqa: S105 - throwaway test accounts
STATUS_HEADER = "municipality_code,assessment_id,installment,status,changed_on,channel"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class WardDay:
    today: date
    staff: dict[str, StaffUser]
    agency_days: list[date] = field(default_factory=list)  # days the agency's store payments were accepted


def today() -> date:
    return datetime.now(TOKYO).date()


def build_ward_day(app: Any, session: Session, cipher: Any) -> WardDay:
    """Build the day described in the module's docstring; return who works there and the dates."""
    day = WardDay(today(), {name: create_user(session, CODE, name, role, PASSWORD, counter_code="resident",
                                              actor="test")
                            for name, role in [("clerk", "counter_staff"), ("super", "counter_supervisor"),
                                               ("acct", "accounting"), ("approver", "approver")]})
    rows = list(itertools.islice(ward_rows(CODE, 2026, 30), 150))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, CODE)
    _agency(app, session, day)
    _paid_elsewhere(session, day.today - timedelta(days=5))
    _online(app, session)
    _counter(app, session, day)
    assert export_next(session, CODE, actor="test") is not None
    _pay_by("card", app, session, _untouched(session, 1)[0])  # after the file: not sent yet
    adapters = app.extensions["kokin.adapters"]
    reconcile_day(session, CODE, day.today, adapters={name: adapters[name] for name in ("stripe", "paypay", "square")},
                  agency_fees=app.config["AGENCY_FEES"])
    session.rollback()
    return day


def _agency(app: Any, session: Session, day: WardDay) -> None:
    plan = plan_store_payments(session, CODE, share=0.3, anomalies={"double_payment": 1},
                               until=day.today - timedelta(days=2))
    run_agency_sandbox(session, app.extensions["kokin.agencies"][AGENCY], CODE, plan)
    day.agency_days = sorted({p.paid_at.date() for p in plan.payments})
    session.rollback()


def _untouched(session: Session, count: int, *, due_after: date | None = None) -> list[Slip]:
    touched = select(Payment.assessment_id).where(Payment.assessment_id.is_not(None))
    query = (select(Slip).join(Assessment, Assessment.id == Slip.assessment_id)
             .where(Slip.status == "issued", Slip.assessment_id.not_in(touched), Assessment.closed_reason.is_(None),
                    Slip.due_date > (due_after or today())).order_by(Slip.id).limit(count))
    found = list(session.scalars(query).unique())
    session.rollback()
    assert len(found) == count
    return found


def _paid_elsewhere(session: Session, on: date) -> None:
    lines = [f"{CODE},{slip.assessment.source_key},{slip.assessment.installment},paid_elsewhere,{on.isoformat()},"
             f"{channel}" for slip, channel in zip(_untouched(session, 2), ("bank", "direct_debit"), strict=True)]
    result = import_status_changes(session, ("\n".join([STATUS_HEADER, *lines]) + "\n").encode(),
                                   filename="status.csv")
    assert result.closed == 2


def _open(channel: str, app: Any, session: Session, slip: Slip) -> tuple[Any, StartedPayment]:
    adapter = app.extensions["kokin.adapters"]["stripe" if channel == "card" else "paypay"]
    started = start_payment(session, {channel: adapter}, municipality_id=slip.municipality_id,
                            slip_number=slip.number, channel=channel, return_url="https://ward.test/r",
                            cancel_url="https://ward.test/c", fee_schedules=app.config["FEE_SCHEDULES"],
                            actor="resident")
    return adapter, started


def _complete(session: Session, opened: tuple[Any, StartedPayment]) -> Payment:
    adapter, started = opened
    ref = started.attempt.provider_ref
    assert ref is not None
    adapter.simulator.simulate_payment(ref, "paid" if adapter.name == "stripe" else "COMPLETED")
    assert settle_attempt(session, adapter.name, adapter.fetch_status(ref), actor="test").status == "succeeded"
    payment = by_id(session, Payment, started.payment.id, populate_existing=True)
    assert payment is not None
    session.rollback()
    return payment


def _pay_by(channel: str, app: Any, session: Session, slip: Slip) -> Payment:
    return _complete(session, _open(channel, app, session, slip))


def _online(app: Any, session: Session) -> None:
    card, paypay, twice = _untouched(session, 3)
    _pay_by("card", app, session, card)
    _pay_by("paypay", app, session, paypay)
    first, second = _open("card", app, session, twice), _open("card", app, session, twice)  # two of a household
    assert _complete(session, first).applied
    again = _complete(session, second)
    assert again.overpaid and not again.applied
    refund = request_refund(session, again.municipality_id, again.id, again.amount, reason="paid twice",
                            requested_by="acct")
    decide_refund(session, refund.municipality_id, refund.id, approve=True,
                  decided_by="approver")
    assert execute_refund(session, app.extensions["kokin.adapters"], refund.municipality_id, refund.id,
                          actor="approver").status == "succeeded"


def _counter(app: Any, session: Session, day: WardDay) -> None:
    adapters = app.extensions["kokin.adapters"]
    clerk = day.staff["clerk"]
    _, terminals = counter_terminals(session, clerk.municipality_id, "resident")
    session.rollback()
    sales = []
    for lines in ([SaleLineRequest("juminhyo", 2)], [SaleLineRequest("inkan", 1), SaleLineRequest("juminhyo", 1)],
                  [SaleLineRequest("inkan",
                                   3)]):
        sales.append(paid_sale(app, session, clerk, lines, brand="FELICA_ID", business_date=day.today))
    voided = void_sale(session, adapters, clerk.municipality_id, sales[-1], supervisor=day.staff["super"],
                       today=day.today)
    assert voided.status == "voided"
    session.rollback()


# -- reading the pages --------------------------------------------------------------------------


def log_in(client: FlaskClient, username: str) -> None:
    assert staff_log_in(client, username, PASSWORD).status_code == 302


class _Tables(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth, self.part = table_id, 0, ""
        self.body: list[list[str]] = []
        self.foot: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag in ("tbody", "tfoot"):
            self.part = tag
        elif self.depth and tag == "tr" and self.part:
            (self.body if self.part == "tbody" else self.foot).append([])
        elif self.depth and tag in ("td", "th") and self.part:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif tag in ("td", "th") and self.cell is not None:
            (self.body if self.part == "tbody" else self.foot)[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(html: str, table_id: str) -> tuple[list[list[str]], list[list[str]]]:
    """The rows of the body and of the foot of the table `table_id`, as the texts of their cells."""
    parser = _Tables(table_id)
    parser.feed(html)
    assert parser.body or parser.foot, f"no table {table_id}"
    return parser.body, parser.foot


def number(text: str) -> int:
    """A figure as shown ("1,234円", "-300"), as an int."""
    cleaned = text.replace(",", "").replace("円", "").strip()
    assert re.fullmatch(r"[+-]?\d+", cleaned), f"not a figure: {text!r}"
    return int(cleaned)


def column_sums(rows: list[list[str]], columns: range) -> list[int]:
    return [sum(number(row[i]) for row in rows) for i in columns]
