"""The janitor settles what webhooks never told us, by asking the provider."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from gateway.db import transaction, utcnow
from gateway.models import Payment, PaymentAttempt, Slip
from gateway.services.janitor import settle_stale_attempts
from gateway.services.ledger_import import import_ledger
from gateway.services.payments import start_payment
from gateway.services.slips import issue_slips
from gateway.services.synthetic import ledger_file_bytes

ROW = dict(municipality_code="131075", assessment_id="01-2026-0000000009", fund_code="01", fiscal_year=2026,
           installment=1, payer_ref="0000000009", payer_name="", amount=8_000, due_date=date(2026, 6, 30))
LATER = timedelta(hours=1)


@pytest.fixture
def started(app, session, cipher):  # type: ignore[no-untyped-def]
    import_ledger(session, cipher, ledger_file_bytes([ROW], "kokin-csv", date(2026, 4, 1)), filename="l.csv")
    issue_slips(session, "131075")
    slip = session.scalar(select(Slip))
    adapters = app.extensions["kokin.adapters"]

    def start(channel: str):  # type: ignore[no-untyped-def]
        return start_payment(session, {"card": adapters["stripe"], "paypay": adapters["paypay"]},
                             municipality_id=slip.municipality_id, slip_number=slip.number, channel=channel,
                             return_url="https://ward.test/r", cancel_url="https://ward.test/c",
                             fee_schedules={}, actor="test")
    return start


def test_a_payment_whose_notification_never_came_is_applied_by_the_janitor(app, session, started) -> None:  # type: ignore[no-untyped-def]
    attempt = started("card").attempt
    app.extensions["kokin.adapters"]["stripe"].simulator.simulate_payment(attempt.provider_ref, "paid")
    assert settle_stale_attempts(session, app.extensions["kokin.adapters"]) == {}  # not stale yet
    results = settle_stale_attempts(session, app.extensions["kokin.adapters"], now=utcnow() + LATER)
    assert results == {"succeeded": 1}
    session.expire_all()
    assert session.scalar(select(Payment)).applied
    assert settle_stale_attempts(session, app.extensions["kokin.adapters"], now=utcnow() + LATER) == {}


def test_a_pending_attempt_past_its_expiry_is_cancelled_and_expired(app, session, started) -> None:  # type: ignore[no-untyped-def]
    attempt = started("paypay").attempt
    assert attempt.expires_at is not None
    results = settle_stale_attempts(session, app.extensions["kokin.adapters"],
                                    now=attempt.expires_at + timedelta(hours=1))
    assert results == {"expired": 1}
    session.expire_all()
    assert session.get(PaymentAttempt, attempt.id).status == "expired"
    assert session.scalar(select(Payment)).status == "open"  # the resident may try again


def test_an_attempt_that_never_reached_the_provider_is_closed_in_two_steps(app, session, started) -> None:  # type: ignore[no-untyped-def]
    attempt = started("card").attempt
    with transaction(session):  # as if the process died between the two transactions
        row = session.get(PaymentAttempt, attempt.id)
        row.status, row.provider_ref = "created", None
    adapters = app.extensions["kokin.adapters"]
    assert settle_stale_attempts(session, adapters, now=utcnow() + LATER) == {"closed without provider reference": 1}
    assert session.get(PaymentAttempt, attempt.id).status == "unknown"
    settle_stale_attempts(session, adapters, now=utcnow() + 2 * LATER)
    session.expire_all()
    assert session.get(PaymentAttempt, attempt.id).status == "failed"


def test_a_provider_outage_leaves_the_attempt_for_the_next_run(app, session, started) -> None:  # type: ignore[no-untyped-def]
    attempt = started("card").attempt
    stripe = app.extensions["kokin.adapters"]["stripe"]
    stripe.simulator.simulate_outage(requests=1, kind="server_error")
    results = settle_stale_attempts(session, app.extensions["kokin.adapters"], now=utcnow() + LATER)
    assert results == {"provider error (retry later)": 1}
    session.expire_all()
    assert session.get(PaymentAttempt, attempt.id).status == "pending"
