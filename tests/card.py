"""Slips issued and paid at the simulated providers: shared by integration tests."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.base import Outcome, PaymentStatus
from gateway.crypto import DataCipher
from gateway.models import Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import StartedPayment, start_payment
from gateway.services.slips import issue_slips

CODE = "131075"


def open_card_payment(app: Any, session: Any, slip: Slip) -> StartedPayment:
    """Open a card payment of the slip: a checkout waiting at the simulated Stripe."""
    stripe = app.extensions["kokin.adapters"]["stripe"]
    return start_payment(session, {"card": stripe}, municipality_id=slip.municipality_id, slip_number=slip.number,
                         channel="card", return_url="https://ward.test/r", cancel_url="https://ward.test/c",
                         fee_schedules=app.config["FEE_SCHEDULES"], actor="resident")


def pay_by_card(app: Any, session: Any, slip: Slip) -> StartedPayment:
    """A card payment of the slip, paid at the simulated Stripe and settled."""
    stripe = app.extensions["kokin.adapters"]["stripe"]
    started = open_card_payment(app, session, slip)
    stripe.simulator.simulate_payment(started.attempt.provider_ref, "paid")
    settle_attempt(session, "stripe", stripe.fetch_status(started.attempt.provider_ref), actor="test")
    return started


def issue_slips_to_pay(session: Session, cipher: DataCipher, count: int) -> list[Slip]:
    """Import `count` instalments of 131075 (2,000 yen and up) and issue their slips; return them."""
    rows = [dict(municipality_code=CODE, assessment_id=f"ONCE-{n:04d}", fund_code="02", fiscal_year=2026,
                 installment=1, payer_ref=f"{n + 1:010d}", payer_name="墨田　太郎", amount=2_000 + 100 * n,
                 due_date=date(2026, 6, 1)) for n in range(count)]
    import_ledger(session, cipher, ledger_file_bytes(rows, "kokin-csv", date(2026, 4, 1)), filename="once.csv")
    assert issue_slips(session, CODE).issued == count
    return list(session.scalars(select(Slip).order_by(Slip.id)).unique())


def open_and_pay(app: Flask, session: Session, slip: Slip, payments: int) -> list[tuple[str, PaymentStatus]]:
    """Open `payments` payments of the slip, alternating card and PayPay, and have each provider take the money.

    Returns what each provider now reports, (adapter name, status), ready to be settled.
    """
    adapters = app.extensions["kokin.adapters"]
    by_channel = {channel: adapters[name] for channel, name in app.config["CHANNEL_ADAPTERS"].items()}
    reports = []
    for n in range(payments):
        channel = ("card", "paypay")[n % 2]
        started = start_payment(session, by_channel, municipality_id=slip.municipality_id, slip_number=slip.number,
                                channel=channel, return_url="https://pay.example/return",
                                cancel_url="https://pay.example/cancel", fee_schedules=app.config["FEE_SCHEDULES"],
                                actor="resident")
        adapter = by_channel[channel]
        ref = started.attempt.provider_ref
        assert ref is not None and started.attempt.status == "pending"
        if channel == "card":
            adapter.simulator.simulate_payment(ref, "paid")
        else:
            adapter.simulator.simulate_payment(ref, "COMPLETED")
        status = adapter.fetch_status(ref)
        assert status.outcome is Outcome.SUCCEEDED
        reports.append((adapter.name, status))
    return reports
