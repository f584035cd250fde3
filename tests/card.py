"""A card payment of a slip, paid at the simulated Stripe and settled: shared by integration tests."""
from __future__ import annotations

from typing import Any

from gateway.models import Slip
from gateway.services.payments import StartedPayment, settle_attempt, start_payment


def pay_by_card(app: Any, session: Any, slip: Slip) -> StartedPayment:
    stripe = app.extensions["kokin.adapters"]["stripe"]
    started = start_payment(session, {"card": stripe}, municipality_id=slip.municipality_id, slip_number=slip.number,
                            channel="card", return_url="https://ward.test/r", cancel_url="https://ward.test/c",
                            fee_schedules=app.config["FEE_SCHEDULES"], actor="resident")
    stripe.simulator.simulate_payment(started.attempt.provider_ref, "paid")
    settle_attempt(session, "stripe", stripe.fetch_status(started.attempt.provider_ref), actor="test")
    return started
