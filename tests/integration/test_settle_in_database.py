"""PostgreSQL's one-call settlement of a notification does what the application's statements do.

`settle_delivery_in_database` (the `kokin_settle_delivery` function of migration 0008) and
`settle_delivery` (the application's statements) are given the same notifications for two
slips paid alike, and must leave the same rows: outcomes, attempts, payments, slips,
refunds, events and deliveries. Declining and refusing write nothing.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from adapters.base import Outcome, PaymentStatus
from domain.lifecycle import IllegalTransition
from gateway.crypto import DataCipher
from gateway.db import Database, transaction
from gateway.errors import NotFound
from gateway.models import Event, Payment, PaymentAttempt, Refund, Slip, WebhookDelivery
from gateway.services.payments import (
    Delivery,
    settle_delivery,
    settle_delivery_in_database,
    settle_notification,
)
from tests.card import issue_slips_to_pay, open_and_pay

pytestmark = pytest.mark.skipif(os.environ.get("KOKIN_TEST_DATABASE", "sqlite") != "postgresql",
                                reason="the settlement function is PostgreSQL's")

PAID_AT = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


def _notifications(reports: list[tuple[str, PaymentStatus]], tag: str) -> list[tuple[str, PaymentStatus, Delivery]]:
    """Two successes of one slip (the second a double payment), a repeat, and late reports that change nothing."""
    (first_adapter, first), (second_adapter, second) = reports
    first = PaymentStatus(first.provider_ref, Outcome.SUCCEEDED, paid_at=PAID_AT, card_brand="visa",
                          card_last4="4242", raw_status="complete")
    second = PaymentStatus(second.provider_ref, Outcome.SUCCEEDED, paid_at=PAID_AT + timedelta(minutes=5),
                           raw_status="COMPLETED")
    late_failure = PaymentStatus(first.provider_ref, Outcome.FAILED, raw_status="failed")
    return [(first_adapter, first, Delivery(f"{tag}-1", "checkout.session.completed")),
            (first_adapter, first, Delivery(f"{tag}-1", "checkout.session.completed")),  # redelivered
            (second_adapter, second, Delivery(f"{tag}-2", "payment.completed")),
            (first_adapter, late_failure, Delivery(f"{tag}-3", "payment_intent.payment_failed")),
            (second_adapter, second, Delivery(f"{tag}-4", "payment.completed"))]  # the same news, a new id


def _state(session: Session, slip: Slip) -> dict[str, Any]:
    """Everything a settlement writes for the slip: ids replaced by their order, amounts by "the slip's"."""
    session.expire_all()
    payments = list(session.scalars(select(Payment).where(Payment.slip_id == slip.id).order_by(Payment.id)))
    order = {p.id: n for n, p in enumerate(payments)}
    attempts = list(session.scalars(select(PaymentAttempt).where(PaymentAttempt.payment_id.in_(order))
                                    .order_by(PaymentAttempt.id)))
    attempt_order = {a.id: n for n, a in enumerate(attempts)}
    refunds = list(session.scalars(select(Refund).where(Refund.payment_id.in_(order)).order_by(Refund.id)))
    refund_order = {r.id: n for n, r in enumerate(refunds)}
    events = session.scalars(select(Event).where(
        ((Event.subject_type == "payment") & Event.subject_id.in_([str(i) for i in order]))
        | ((Event.subject_type == "payment_attempt") & Event.subject_id.in_([str(i) for i in attempt_order])))
        .where(Event.actor == "webhook:test").order_by(Event.id))

    def subject(event: Event) -> int:
        return (order if event.subject_type == "payment" else attempt_order)[int(event.subject_id)]

    def data(event: Event) -> dict[str, Any]:
        found = dict(event.data)
        if "refund_id" in found:
            found["refund_id"] = refund_order[found["refund_id"]]
        if "slip_id" in found:
            found["slip_id"] = found["slip_id"] == slip.id
        if "amount" in found:
            found["amount"] = found["amount"] == slip.amount
        return found

    reread = session.get(Slip, slip.id, populate_existing=True)
    assert reread is not None
    return {
        "slip": reread.status,
        "payments": [(p.status, p.applied, p.overpaid, p.accepted_at, p.amount == slip.amount, p.fee_amount)
                     for p in payments],
        "attempts": [(a.status, a.card_brand, a.card_last4) for a in attempts],
        "refunds": [(order[r.payment_id], r.amount == slip.amount, r.reason, r.status, r.requested_by)
                    for r in refunds],
        "events": [(e.kind, e.subject_type, subject(e), data(e), e.municipality_id) for e in events],
    }


def test_the_function_and_the_application_leave_the_same_rows(app: Flask, database: Database,
                                                              session: Session, cipher: DataCipher) -> None:
    by_app, by_function = issue_slips_to_pay(session, cipher, 2)
    outcomes: dict[str, list[Any]] = {"application": [], "function": []}
    for notification in _notifications(open_and_pay(app, session, by_app, 2), "app"):
        with transaction(session):
            settled = settle_delivery(session, *notification[:2], notification[2], actor="webhook:test")
        outcomes["application"].append(settled and settled[1])
    for notification in _notifications(open_and_pay(app, session, by_function, 2), "fn"):
        settled = settle_delivery_in_database(database.engine, *notification[:2], notification[2],
                                              actor="webhook:test")
        assert settled is not NotImplemented
        outcomes["function"].append(settled and settled[1])

    assert outcomes["application"] == outcomes["function"] == [True, None, True, False, False]
    expected, found = _state(session, by_app), _state(session, by_function)
    assert found == expected
    assert expected["slip"] == "paid"
    assert [p[1:3] for p in expected["payments"]] == [(True, False), (False, True)]  # booked once, one overpaid
    assert [e[0] for e in expected["events"]] == ["attempt.succeed", "payment.applied", "attempt.succeed",
                                                  "payment.double_payment"]
    deliveries = session.scalars(select(WebhookDelivery.event_id).order_by(WebhookDelivery.id)).all()
    assert deliveries == ["app-1", "app-2", "app-3", "app-4", "fn-1", "fn-2", "fn-3", "fn-4"]


def _written(session: Session) -> tuple[int, int, int]:
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
            session.scalar(select(func.count()).select_from(Refund)) or 0)


def test_an_attempt_that_is_not_an_instalments_is_declined_and_nothing_is_written(
        database: Database, session: Session) -> None:
    before = _written(session)
    unknown = PaymentStatus("cs_test_nobody", Outcome.SUCCEEDED, raw_status="complete")

    assert settle_delivery_in_database(database.engine, "stripe", unknown, Delivery("evt-x", "t"),
                                       actor="webhook:test") is NotImplemented
    assert _written(session) == before
    with pytest.raises(NotFound):  # the application then settles it: here, there is no such attempt
        settle_notification(session, "stripe", unknown, Delivery("evt-x", "t"), actor="webhook:test")
    assert _written(session) == before


def test_a_success_for_a_payment_that_is_not_open_is_refused_and_nothing_is_written(
        app: Flask, database: Database, session: Session, cipher: DataCipher) -> None:
    (slip,) = issue_slips_to_pay(session, cipher, 1)
    (adapter_name, status), = open_and_pay(app, session, slip, 1)
    with transaction(session):
        session.execute(update(Payment).values(status="cancelled"))
    before = _written(session)

    with pytest.raises(IllegalTransition, match="a success cannot be applied") as refused:
        settle_delivery_in_database(database.engine, adapter_name, status, Delivery("evt-y", "t"),
                                    actor="webhook:test")

    payment = session.scalar(select(Payment))
    assert payment is not None and refused.value.details == {"payment_id": payment.id}
    assert _written(session) == before
    attempt = session.scalar(select(PaymentAttempt))
    assert attempt is not None and attempt.status == "pending" and payment.status == "cancelled"


def test_a_naive_payment_time_is_refused_before_anything_is_sent(
        app: Flask, database: Database, session: Session, cipher: DataCipher) -> None:
    (slip,) = issue_slips_to_pay(session, cipher, 1)
    (adapter_name, status), = open_and_pay(app, session, slip, 1)
    naive = PaymentStatus(status.provider_ref, Outcome.SUCCEEDED, paid_at=datetime(2026, 6, 1, 12, 0))
    before = _written(session)

    with pytest.raises(ValueError, match="naive datetimes are refused"):
        settle_delivery_in_database(database.engine, adapter_name, naive, Delivery("evt-z", "t"),
                                    actor="webhook:test")
    assert _written(session) == before
