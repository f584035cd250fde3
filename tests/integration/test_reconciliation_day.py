"""A generated ward-day with anomalies of every kind planted through the real services.

Today (Asia/Tokyo, the day the simulators stamp) residents pay slips by card and PayPay and
buy certificates at the counter; some payments are wrong in planted ways, and the agency
sandbox plants every anomaly its channel can show on earlier days. `reconcile_day` must
detect each planted case exactly once and nothing else, report revenue to the yen with the
system usage fees apart, and write the same summary when run again.
"""
from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from adapters.base import CheckoutRequest, PaymentAdapter, SettledPayment
from adapters.square import SquareAdapter
from gateway.db import transaction
from gateway.models import EXCEPTION_KINDS, Assessment, Payment, ReconException, Sale, Slip, StaffUser
from gateway.sandbox.agency import ANOMALY_KINDS, SANDBOX_FEE, plan_store_payments, run_agency_sandbox
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services import sales as sales_service
from gateway.services.counters import counter_terminals
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import StartedPayment, start_payment
from gateway.services.sales import SaleLineRequest, follow_sale, start_sale
from gateway.services.slips import issue_slips, reissue_slip
from gateway.services.staff_accounts import create_user
from reconciliation.run import PAID, ReconSummary, day_window, reconcile_day, run_record, summary_csv
from tests.rows import by_id

MUNICIPALITY = "131075"
TOKYO = ZoneInfo("Asia/Tokyo")
TODAY = datetime.now(TOKYO).date()  # the simulators stamp real time: the business date is today
AGENCY = "agency-fixed120"
DEVICE = "sandbox-device-resident-1"
PASSWORD = "counter-pass-2026"  # noqa: S105 - a throwaway test account
RETURN = "https://ward.test/r"


class DroppingReport:
    """The Square adapter with some payments left out of its settlement report (the provider lost them)."""

    def __init__(self, adapter: SquareAdapter, drop: set[str]) -> None:
        self._adapter, self._drop = adapter, drop
        self.name, self.capabilities = adapter.name, adapter.capabilities

    def settlement_report(self, day: date) -> list[SettledPayment]:
        return [p for p in self._adapter.settlement_report(day) if p.reference not in self._drop]


@dataclass
class WardDay:
    municipality_id: int
    adapters: dict[str, Any]  # what reconcile_day is given
    agency_fees: dict[str, int]
    planted: Counter[str] = field(default_factory=Counter)  # every kind, every date
    today: set[tuple[str, str]] = field(default_factory=set)  # (kind, subject) planted on TODAY
    applied: dict[int, int] = field(default_factory=dict)  # payment id -> yen booked today
    channels: Counter[str] = field(default_factory=Counter)  # channel -> applied payments today
    fees: int = 0  # system usage fees charged today (card)
    payments: int = 0  # every payment accepted today, applied or not

    def reconcile(self, session: Session) -> ReconSummary:
        return reconcile_day(session, MUNICIPALITY, TODAY, adapters=self.adapters, agency_fees=self.agency_fees)


@pytest.fixture
def slips(session: Session, cipher: Any) -> None:
    """A small ward: 200 instalments imported and their slips issued (due June 2026 - March 2027)."""
    rows = list(itertools.islice(ward_rows(MUNICIPALITY, 2026, 40), 200))
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="ledger.csv")
    issue_slips(session, MUNICIPALITY)


@pytest.fixture
def clerk(session: Session, slips: None) -> StaffUser:
    return create_user(session, MUNICIPALITY, "clerk", "counter_staff", PASSWORD, counter_code="resident",
                       actor="test")


def _untouched_slips(session: Session, *, due_after: date | None = None, due_before: date | None = None,
                     count: int) -> list[Slip]:
    """Issued slips of instalments nobody has paid or tried to pay yet, in issue order (amounts vary)."""
    touched = select(Payment.assessment_id).where(Payment.assessment_id.is_not(None))
    query = select(Slip).where(Slip.status == "issued", Slip.barcode.is_not(None),
                               Slip.assessment_id.not_in(touched)).order_by(Slip.id)
    if due_after is not None:
        query = query.where(Slip.due_date > due_after)
    if due_before is not None:
        query = query.where(Slip.due_date < due_before)
    found = list(session.scalars(query.limit(count)))
    session.rollback()
    assert len(found) == count
    return found


@pytest.fixture
def ward_day(app: Any, session: Session, slips: None, clerk: StaffUser) -> WardDay:
    adapters = app.extensions["kokin.adapters"]
    online = {"card": adapters["stripe"], "paypay": adapters["paypay"]}
    square: SquareAdapter = adapters["square"]
    assert square.simulator is not None, "the test app runs Square in sandbox mode"
    fee_schedules = app.config["FEE_SCHEDULES"]

    # The agency channel: every anomaly it can show, once, on days before today (slips due by then).
    agency = app.extensions["kokin.agencies"][AGENCY]
    plan = plan_store_payments(session, MUNICIPALITY, share=0.3, anomalies=dict.fromkeys(ANOMALY_KINDS, 1),
                               until=TODAY - timedelta(days=2))
    run_agency_sandbox(session, agency, MUNICIPALITY, plan)
    session.rollback()

    municipality_id = clerk.municipality_id
    day = WardDay(municipality_id, {}, {AGENCY: SANDBOX_FEE}, planted=Counter(plan.planted))

    def start(slip_number: str, channel: str = "card") -> StartedPayment:
        return start_payment(session, online, municipality_id=municipality_id, slip_number=slip_number,
                             channel=channel, return_url=RETURN, cancel_url=RETURN, fee_schedules=fee_schedules,
                             actor="resident")

    def pay(started: StartedPayment) -> Payment:
        attempt, adapter = started.attempt, online[started.payment.channel]
        assert attempt.provider_ref
        if adapter.name == "stripe":
            adapter.simulator.simulate_payment(attempt.provider_ref, "paid")
        else:
            adapter.simulator.simulate_payment(attempt.provider_ref, "COMPLETED")
        settled = settle_attempt(session, adapter.name, adapter.fetch_status(attempt.provider_ref), actor="test")
        assert settled.status == "succeeded"
        payment = by_id(session, Payment, started.payment.id, populate_existing=True)
        assert payment is not None and payment.accepted_at is not None
        day.payments += 1
        day.fees += payment.fee_amount
        if payment.applied:
            day.applied[payment.id] = payment.amount
            day.channels[payment.channel] += 1
        session.rollback()
        return payment

    def plant(kind: str, subject: str) -> None:
        day.planted[kind] += 1
        day.today.add((kind, subject))

    fine_card, fine_paypay, twice, void, corrected = _untouched_slips(session, due_after=TODAY, count=5)
    (late,) = _untouched_slips(session, due_before=TODAY, count=1)

    # Fine: a card payment and a PayPay payment of slips not yet due.
    assert pay(start(fine_card.number)).fee_amount > 0
    assert pay(start(fine_paypay.number, "paypay")).fee_amount == 0
    # Two members of a household pay the same slip: the second payment is a double payment.
    first, second = start(twice.number), start(twice.number)
    assert pay(first).applied
    again = pay(second)
    assert again.overpaid and not again.applied
    plant("double_payment", f"payment:{again.id}")
    # A slip paid after its due date.
    plant("paid_after_due_date", f"payment:{pay(start(late.number)).id}")
    # The resident opens the checkout; the slip is reissued meanwhile; the old sheet is paid.
    on_void = start(void.number)
    reissue_slip(session, municipality_id, void.number, reason="lost by the resident", actor="clerk")
    plant("payment_on_void_slip", f"payment:{pay(on_void).id}")
    # Paid as billed; a correction of the assessment arrives later.
    mismatched = pay(start(corrected.number))
    with transaction(session):
        session.execute(update(Assessment).where(Assessment.id == mismatched.assessment_id)
                        .values(amount=Assessment.amount + 1_000))
    plant("amount_mismatch", f"payment:{mismatched.id}")

    # The counter: two sales paid at the terminal; Square's report leaves the second one out.
    terminal_id = _terminal_id(session, clerk)
    kept = _paid_sale(session, adapters, square, clerk, terminal_id, [SaleLineRequest("juminhyo", 2)])
    lost = _paid_sale(session, adapters, square, clerk, terminal_id, [SaleLineRequest("inkan", 1)])
    for sale in (kept, lost):
        payment = session.scalar(select(Payment).where(Payment.sale_id == sale.id))
        assert payment is not None and payment.applied
        day.applied[payment.id] = payment.amount
        day.channels["emoney"] += 1
        day.payments += 1
        session.rollback()
    plant("missing_in_settlement", f"sale:{lost.id}")
    lost_attempt = sales_service.sale_attempt(session, lost.municipality_id, lost.id)
    assert lost_attempt is not None
    session.rollback()
    # A checkout completed on the terminal that the gateway never created (a stray test payment).
    stray = square.create_checkout(CheckoutRequest(
        reference=f"stray-{uuid.uuid4().hex[:12]}", amount=750, description="?", return_url="", cancel_url="",
        idempotency_key=uuid.uuid4().hex, device_id=DEVICE, payment_type="FELICA_QUICPAY"))
    square.simulator.simulate_device(stray.provider_ref, "start")
    assert square.simulator.simulate_device(stray.provider_ref, "complete") == "COMPLETED"
    (stray_payment,) = square.simulator.checkout(stray.provider_ref)["payment_ids"]
    plant("missing_in_gateway", f"settlement:{stray_payment}")
    # Stripe keeps its fee out of the payout of the day's card payments; the ward budgets gross.
    plant("fee_netted", f"fees:stripe:{TODAY.isoformat()}")

    day.adapters = {"square": cast(PaymentAdapter, DroppingReport(square, {lost_attempt.reference})),
                    "stripe": adapters["stripe"], "paypay": adapters["paypay"]}
    return day


def _terminal_id(session: Session, user: StaffUser) -> int:
    _, terminals = counter_terminals(session, user.municipality_id, "resident")
    session.rollback()
    return terminals[0].id


def _paid_sale(session: Session, adapters: dict[str, Any], square: SquareAdapter, user: StaffUser,
               terminal_id: int, lines: list[SaleLineRequest]) -> Sale:
    assert square.simulator is not None
    sale = start_sale(session, adapters, user=user, counter_code="resident", terminal_id=terminal_id, lines=lines,
                      brand="FELICA_ID", business_date=TODAY)
    attempt = sales_service.sale_attempt(session, sale.municipality_id, sale.id)
    assert attempt is not None and attempt.provider_ref
    session.rollback()
    square.simulator.simulate_device(attempt.provider_ref, "start")
    assert square.simulator.simulate_device(attempt.provider_ref, "complete") == "COMPLETED"
    sale = follow_sale(session, adapters, sale.municipality_id, sale.id)
    assert sale.status == "paid"
    return sale


def _exceptions(session: Session) -> list[tuple[str, str, date]]:
    rows = [(e.kind, e.subject_key, e.business_date)
            for e in session.scalars(select(ReconException).order_by(ReconException.kind, ReconException.subject_key))]
    session.rollback()
    return rows


def _applied_today(session: Session, municipality_id: int) -> int:
    """The yen booked today straight from the payments table, whatever the channel."""
    start, end = day_window(TODAY)
    total = session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.municipality_id == municipality_id, Payment.applied, Payment.status.in_(PAID),
        Payment.accepted_at >= start, Payment.accepted_at < end))
    session.rollback()
    return int(total or 0)


def test_every_planted_anomaly_is_detected_exactly_once_and_the_totals_are_exact(
        session: Session, ward_day: WardDay) -> None:
    summary = ward_day.reconcile(session)

    found = _exceptions(session)
    assert Counter(kind for kind, _, _ in found) == ward_day.planted
    # Every kind of the contract once; the ledger's kinds once more, planted online today.
    assert ward_day.planted == Counter(dict.fromkeys(EXCEPTION_KINDS, 1)) + Counter(
        ["double_payment", "paid_after_due_date", "payment_on_void_slip", "amount_mismatch", "fee_netted"])
    assert {(kind, subject) for kind, subject, on in found if on == TODAY} == ward_day.today
    # This run raised what it finds against the ledger and the providers; what a payment books
    # was raised when it was booked (the agency ones when their files came in).
    at_booking = Counter(["double_payment", "paid_after_due_date", "payment_on_void_slip"])
    assert summary.raised == Counter(kind for kind, _ in ward_day.today) - at_booking
    assert summary.open_exceptions == Counter(kind for kind, _ in ward_day.today)

    revenue = sum(ward_day.applied.values())
    assert summary.revenue == revenue == _applied_today(session, ward_day.municipality_id)
    assert summary.payments == ward_day.payments == len(ward_day.applied) + 1  # the double payment is not revenue
    assert summary.fees == ward_day.fees > 0  # card fees, reported apart
    by_channel = {row["channel"]: (row["count"], row["amount"], row["fee"]) for row in summary.by_channel}
    assert {channel: count for channel, (count, _, _) in by_channel.items()} == dict(ward_day.channels)
    assert sum(count for count, _, _ in by_channel.values()) == len(ward_day.applied)
    assert sum(amount for _, amount, _ in by_channel.values()) == revenue
    assert by_channel["card"][2] > 0 and by_channel["paypay"][2] == by_channel["emoney"][2] == 0
    assert sum(row["amount"] for row in summary.by_fund) == revenue  # counter fees under their fund
    assert [(row["channel"], row["count"]) for row in summary.unapplied] == [("card", 1)]  # the double payment
    assert summary.received == revenue + summary.unapplied[0]["amount"]
    assert summary.runs == 1


def test_a_second_run_changes_nothing_and_writes_the_same_summary(session: Session, ward_day: WardDay) -> None:
    first = ward_day.reconcile(session)
    found = _exceptions(session)

    second = ward_day.reconcile(session)

    assert _exceptions(session) == found
    assert (first.runs, second.runs) == (1, 2)
    assert summary_csv(second) == summary_csv(first)
    assert second.as_dict() == first.as_dict()
    run, exceptions = run_record(session, MUNICIPALITY, TODAY)
    assert run is not None and run.runs == 2 and run.status == "succeeded"
    assert run.summary == second.as_dict()
    assert {(e.kind, e.subject_key) for e in exceptions} == ward_day.today
    session.rollback()


def test_a_second_run_raises_nothing_new(session: Session, ward_day: WardDay) -> None:
    ward_day.reconcile(session)

    second = ward_day.reconcile(session)

    assert second.raised == Counter()

