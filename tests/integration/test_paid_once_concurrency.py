"""Paid once, under concurrency: many successful payments of one slip book exactly one.

On PostgreSQL the full check of the issue: 50 parallel successful payments of one slip,
across card and PayPay, give one applied payment and 49 recorded overpayments (each an
overpayment record for the core system, no provider refund), nothing lost; repeated over
100 slips. SQLite serialises writers, so it runs a smaller version of the same check.

Run twice: settled as the poller and janitor settle (`settle_attempt`, in the caller's
session transaction), and as a webhook settles (`settle_notification`: each report its own
notification, recorded in the settlement's transaction).
"""
from __future__ import annotations

import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.base import PaymentStatus
from gateway.crypto import DataCipher
from gateway.db import Database
from gateway.models import (
    Event,
    Municipality,
    Payment,
    PaymentAttempt,
    ReceiptRecord,
    Refund,
    Slip,
    WebhookDelivery,
)
from gateway.services.outcomes import Delivery, settle_attempt, settle_notification
from tests.card import CODE, issue_slips_to_pay, open_and_pay
from tests.rows import by_id

# (slips, payments per slip, threads): the issue's size on PostgreSQL, a smaller one on SQLite.
SIZES = {"postgresql": (100, 50, 15), "sqlite": (10, 20, 8)}  # 15 = the engine's default pool (5 + 10)
# The same check settled as webhooks: fewer slips (the contention is per slip), still 50 payments each.
NOTIFICATION_SIZES = {"postgresql": (20, 50, 15), "sqlite": (5, 20, 8)}


@pytest.fixture
def app_config() -> dict[str, Any]:
    """The simulators in memory: this is about the gateway's writes under contention, not the sandbox's
    shared store (a transaction per simulator call, which would double the time of 5,000 payments)."""
    return {"SANDBOX_STATE": "memory"}


def _settle_concurrently(database: Database, reports: list[list[tuple[str, PaymentStatus]]], threads: int,
                         via: str) -> None:
    """Settle every slip's reports from `threads` threads that meet at a barrier before each slip.

    `via` "poll": `settle_attempt`; "notification": `settle_notification`, one event id a report.
    """
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        with database.session() as session:
            for slip_reports in reports:
                try:
                    barrier.wait(timeout=60)
                except threading.BrokenBarrierError as exc:  # another thread failed (reported too), or a timeout
                    errors.append(exc)
                    return
                try:
                    for adapter_name, status in slip_reports[index::threads]:
                        if via == "poll":
                            settle_attempt(session, adapter_name, status, actor=f"poller-{index}")
                        else:
                            delivery = Delivery(f"evt-{status.provider_ref}", "payment.succeeded")
                            settled = settle_notification(session, adapter_name, status, delivery,
                                                          actor=f"webhook-{index}")
                            assert settled is not None and settled[1], "a first notification changes its attempt"
                except BaseException as exc:
                    errors.append(exc)
                    barrier.abort()
                    return

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker, index) for index in range(threads)]:
            future.result()
    assert not errors, errors


def _state_of(session: Session, slip_ids: list[int]) -> dict[int, dict[str, Any]]:
    payments = session.scalars(select(Payment).where(Payment.slip_id.in_(slip_ids))).unique().all()
    refunds = session.scalars(select(Refund).join(Payment, Refund.payment_id == Payment.id)
                              .where(Payment.slip_id.in_(slip_ids))).all()
    attempts = session.scalars(select(PaymentAttempt).join(Payment, PaymentAttempt.payment_id == Payment.id)
                               .where(Payment.slip_id.in_(slip_ids))).all()
    payment_slip = {p.id: p.slip_id for p in payments}
    state: dict[int, dict[str, Any]] = defaultdict(lambda: {"payments": [], "refunds": [], "attempts": []})
    for payment in payments:
        state[payment.slip_id]["payments"].append(payment)
    for refund in refunds:
        state[payment_slip[refund.payment_id]]["refunds"].append(refund)
    for attempt in attempts:
        state[payment_slip[attempt.payment_id]]["attempts"].append(attempt)
    return state


@pytest.mark.slow  # poll: 95-115 s on PostgreSQL (5,000 payments, 2 shared cores); ~3 s on SQLite
@pytest.mark.parametrize("via", ["poll", "notification"])
def test_parallel_successful_payments_of_one_slip_apply_one_and_keep_every_other_as_an_overpayment(
        app: Flask, database: Database, cipher: DataCipher, via: str) -> None:
    sizes = SIZES if via == "poll" else NOTIFICATION_SIZES
    slip_count, per_slip, threads = sizes[database.engine.dialect.name]
    with database.session() as session:
        slips = issue_slips_to_pay(session, cipher, slip_count)
        reports = [open_and_pay(app, session, slip, per_slip) for slip in slips]

    _settle_concurrently(database, reports, threads, via)

    with database.session() as session:
        municipality_id = session.scalar(select(Municipality.id).where(Municipality.code == CODE))
        state = _state_of(session, [slip.id for slip in slips])
        for slip in slips:
            found = state[slip.id]
            payments: list[Payment] = found["payments"]
            assert len(payments) == per_slip, f"slip {slip.number}: a payment was lost"
            assert Counter(p.status for p in payments) == {"succeeded": per_slip}
            assert Counter(p.channel for p in payments) == {"card": per_slip // 2, "paypay": per_slip - per_slip // 2}
            assert Counter(a.status for a in found["attempts"]) == {"succeeded": per_slip}
            applied = [p for p in payments if p.applied]
            overpaid = [p for p in payments if p.overpaid]
            assert len(applied) == 1, f"slip {slip.number}: {len(applied)} payments applied"
            assert len(overpaid) == per_slip - 1
            assert all(p.municipality_id == municipality_id and p.assessment_id == slip.assessment_id
                       and p.amount == slip.amount and p.refunded_amount == 0 for p in payments)
            assert found["refunds"] == []  # the fund's policy: 充当 or 還付 by the core system
            records = session.execute(select(ReceiptRecord.payment_id, ReceiptRecord.kind, ReceiptRecord.reason,
                                             ReceiptRecord.amount)
                                      .where(ReceiptRecord.payment_id.in_([p.id for p in payments]))).all()
            assert sorted(tuple(r) for r in records) == sorted(
                [(applied[0].id, "receipt", None, slip.amount)]
                + [(p.id, "overpayment", "double_payment", slip.amount) for p in overpaid])
            reread = by_id(session, Slip, slip.id, populate_existing=True)
            assert reread is not None and reread.status == "paid"
        # every change audited once: one success per attempt, one booking per slip, each overpayment
        kinds = Counter(session.scalars(select(Event.kind).where(Event.kind.in_(
            ("attempt.succeed", "payment.applied", "payment.double_payment")))))
        assert kinds == {"attempt.succeed": slip_count * per_slip, "payment.applied": slip_count,
                         "payment.double_payment": slip_count * (per_slip - 1)}
        every = [p for found in state.values() for p in found["payments"]]
        booked = set(session.scalars(select(Event.subject_id).where(Event.kind == "payment.applied")))
        assert booked == {str(p.id) for p in every if p.applied}
        doubles = {(e.subject_id, e.data["overpaid"])
                   for e in session.scalars(select(Event).where(Event.kind == "payment.double_payment"))}
        assert doubles == {(str(p.id), True) for p in every if p.overpaid}
        deliveries = session.scalar(select(func.count()).select_from(WebhookDelivery))
        assert deliveries == (slip_count * per_slip if via == "notification" else 0)
