"""The janitor settles what webhooks never told us, by asking the provider."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from gateway.db import transaction, utcnow
from gateway.errors import ProviderUnavailable
from gateway.models import Event, Payment, PaymentAttempt, Refund, Slip
from gateway.sandbox.ward import ledger_file_bytes
from gateway.services.janitor import settle_stale_attempts
from gateway.services.ledger_import import import_ledger
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import start_payment
from gateway.services.refunds import decide_refund, execute_refund, request_refund, resume_refunds
from gateway.services.slips import issue_slips
from tests.rows import by_id, ward_of

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
    assert by_id(session, PaymentAttempt, attempt.id).status == "expired"
    assert session.scalar(select(Payment)).status == "open"  # the resident may try again


def test_an_attempt_that_never_reached_the_provider_is_closed_in_two_steps(app, session, started) -> None:  # type: ignore[no-untyped-def]
    attempt = started("card").attempt
    with transaction(session):  # as if the process died between the two transactions
        row = by_id(session, PaymentAttempt, attempt.id)
        row.status, row.provider_ref = "created", None
    adapters = app.extensions["kokin.adapters"]
    assert settle_stale_attempts(session, adapters, now=utcnow() + LATER) == {"closed without provider reference": 1}
    assert by_id(session, PaymentAttempt, attempt.id).status == "unknown"
    settle_stale_attempts(session, adapters, now=utcnow() + 2 * LATER)
    session.expire_all()
    assert by_id(session, PaymentAttempt, attempt.id).status == "failed"


def test_a_provider_outage_leaves_the_attempt_for_the_next_run(app, session, started) -> None:  # type: ignore[no-untyped-def]
    attempt = started("card").attempt
    stripe = app.extensions["kokin.adapters"]["stripe"]
    stripe.simulator.simulate_outage(requests=1, kind="server_error")
    results = settle_stale_attempts(session, app.extensions["kokin.adapters"], now=utcnow() + LATER)
    assert results == {"provider error (retry later)": 1}
    session.expire_all()
    assert by_id(session, PaymentAttempt, attempt.id).status == "pending"


@pytest.fixture
def paid_card_refund(app, session, started):  # type: ignore[no-untyped-def]
    """A card payment applied, and a refund of 3,000 yen of it approved by a second person."""
    adapters = app.extensions["kokin.adapters"]
    attempt = started("card").attempt
    adapters["stripe"].simulator.simulate_payment(attempt.provider_ref, "paid")
    settle_attempt(session, "stripe", adapters["stripe"].fetch_status(attempt.provider_ref), actor="test")
    refund = request_refund(session, attempt.municipality_id, attempt.payment_id, 3_000, reason="過誤納",
                            requested_by="clerk")
    decide_refund(session, refund.municipality_id, refund.id, approve=True, decided_by="approver")
    return refund.id, attempt.provider_ref


def _charge_refunded(app, provider_ref: str) -> int:  # type: ignore[no-untyped-def]
    session_json = app.extensions["kokin.adapters"]["stripe"].simulator.checkout_session(provider_ref)
    return int(session_json["payment_intent"]["latest_charge"]["amount_refunded"])


def test_a_refund_the_provider_accepted_as_pending_is_finished_by_the_janitor(app, session,  # type: ignore[no-untyped-def]
                                                                               paid_card_refund) -> None:
    refund_id, provider_ref = paid_card_refund
    adapters = app.extensions["kokin.adapters"]
    adapters["stripe"].simulator.refunds_pending = True

    refund = execute_refund(session, adapters, ward_of(session, Refund, refund_id), refund_id, actor="treasurer")

    assert refund.status == "processing" and refund.provider_ref.startswith("re_")
    payment = by_id(session, Payment, by_id(session, Refund, refund_id).payment_id)
    assert (payment.status, payment.refunded_amount) == ("succeeded", 0)  # nothing counted until it is done
    assert resume_refunds(session, adapters) == {}  # not left long enough yet
    assert resume_refunds(session, adapters, now=utcnow() + LATER) == {"refund succeeded": 1}
    session.expire_all()
    assert by_id(session, Refund, refund_id).status == "succeeded"
    assert (payment.status, payment.refunded_amount) == ("partially_refunded", 3_000)
    assert _charge_refunded(app, provider_ref) == 3_000  # refunded once at the provider
    assert resume_refunds(session, adapters, now=utcnow() + LATER) == {}
    kinds = session.scalars(select(Event.kind).where(Event.subject_type == "refund",
                                                     Event.subject_id == str(refund_id)).order_by(Event.id)).all()
    assert kinds == ["refund.requested", "refund.approved", "refund.pending", "refund.succeeded"]


def test_a_refund_cut_off_by_an_outage_is_carried_out_once_by_the_janitor(app, session,  # type: ignore[no-untyped-def]
                                                                           paid_card_refund) -> None:
    refund_id, provider_ref = paid_card_refund
    adapters = app.extensions["kokin.adapters"]
    adapters["stripe"].simulator.simulate_outage(1, "connection")

    with pytest.raises(ProviderUnavailable):
        execute_refund(session, adapters, ward_of(session, Refund, refund_id), refund_id, actor="treasurer")

    session.expire_all()
    assert by_id(session, Refund, refund_id).status == "processing"
    assert resume_refunds(session, adapters, now=utcnow() + LATER) == {"refund succeeded": 1}
    session.expire_all()
    assert by_id(session, Refund, refund_id).status == "succeeded"
    assert _charge_refunded(app, provider_ref) == 3_000
