"""A provider notification names its ward: our attempt reference carries the ward's code (docs/scaling.md).

A notification is settled by statements that name the ward its reference names, and recorded
in that ward's chain (`webhook_deliveries.chain`, migration 0031). A reference made before
(`kk-<hex>`) still settles: its ward is found from its attempt. Whichever way the ward is
found, a redelivery changes nothing, also when many arrive at once.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.identifiers import ward_code_of_reference
from gateway.config import load_settings
from gateway.crypto import DataCipher
from gateway.db import Database, utcnow
from gateway.models import Event, Municipality, Payment, PaymentAttempt, Slip, WebhookDelivery
from gateway.sandbox.ward import ledger_file_bytes, ward_rows
from gateway.services import payments
from gateway.services.ledger_import import import_ledger
from gateway.services.reference import seed_reference_data
from gateway.services.slips import issue_slips
from gateway.services.webhooks import receive_webhook
from tests.api.test_ward_isolation import B, _ward_b
from tests.card import CODE, issue_slips_to_pay, open_card_payment

THREADS = 6


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Two wards; the simulators in memory (the deliveries race in the gateway, not in the sandbox's store)."""
    return {"SANDBOX_STATE": "memory", "MUNICIPALITIES": [load_settings()["MUNICIPALITIES"][0], _ward_b()]}


def _ward(session: Session, code: str) -> int:
    ward = session.scalar(select(Municipality.id).where(Municipality.code == code))
    assert ward is not None
    return ward


def _slip_of_ward_b(session: Session, cipher: DataCipher) -> Slip:
    seed_reference_data(session, [_ward_b()])
    import_ledger(session, cipher, ledger_file_bytes(list(ward_rows(B, 2026, payers=1)), "kokin-csv",
                                                     date(2026, 4, 1)), filename="koto.csv")
    issue_slips(session, B)
    slip = session.scalars(select(Slip).where(Slip.municipality_id == _ward(session, B)).order_by(Slip.id)).first()
    assert slip is not None
    return slip


def _completed(app: Flask, provider_ref: str) -> tuple[dict[str, str], bytes]:
    """The paid session's signed checkout.session.completed, as Stripe delivers it."""
    stripe = app.extensions["kokin.adapters"]["stripe"]
    stripe.simulator.simulate_payment(provider_ref, "paid")
    return next((headers, body) for headers, body in stripe.simulator.events_for(provider_ref, utcnow())
                if json.loads(body)["type"] == "checkout.session.completed")


def _paypay_paid(app: Flask, provider_ref: str) -> tuple[dict[str, str], bytes, str]:
    """PayPay's notification of the paid code (a hint to poll): headers, body and the token for the URL."""
    paypay = app.extensions["kokin.adapters"]["paypay"]
    paypay.simulator.simulate_payment(provider_ref, "COMPLETED")
    delivery = paypay.simulator.notification(provider_ref, sent_at=utcnow())
    token = delivery.headers.pop("X-Kokin-Webhook-Token")
    return delivery.headers, delivery.body, token


def test_a_notification_is_settled_and_recorded_in_the_ward_its_reference_names(
        app: Flask, client: FlaskClient, session: Session, cipher: DataCipher) -> None:
    """Two wards, a paid card payment in each: each notification lands in its own ward, once."""
    slips = {CODE: issue_slips_to_pay(session, cipher, 1)[0], B: _slip_of_ward_b(session, cipher)}
    for code, slip in slips.items():
        attempt = open_card_payment(app, session, slip).attempt
        assert attempt.provider_ref is not None and ward_code_of_reference(attempt.reference) == code
        headers, body = _completed(app, attempt.provider_ref)
        assert client.post("/webhooks/stripe", data=body, headers=headers).json["received"] == "applied"
        assert client.post("/webhooks/stripe", data=body, headers=headers).json["received"] == "duplicate"

    session.expire_all()
    wards = {code: _ward(session, code) for code in slips}
    assert sorted(session.scalars(select(WebhookDelivery.chain))) == sorted(wards.values())
    applied = session.execute(select(Payment.municipality_id, Payment.slip_id).where(Payment.applied)).all()
    assert sorted(applied) == sorted((wards[code], slip.id) for code, slip in slips.items())


@pytest.mark.parametrize("adapter", ["stripe", "paypay"])
def test_a_reference_made_before_references_named_their_ward_still_settles_once(
        app: Flask, client: FlaskClient, session: Session, cipher: DataCipher, monkeypatch: pytest.MonkeyPatch,
        adapter: str) -> None:
    """`kk-<hex>`, as references were made before: its ward is found from its attempt, and recorded there.

    Stripe's signed outcome is applied as it is (the attempt found by Stripe's id); PayPay's hint
    is looked up by our reference (PayPay's id is ours) before PayPay is asked.
    """
    monkeypatch.setattr(payments, "new_attempt_reference", lambda _session, _ward: f"kk-{uuid.uuid4().hex}")
    (slip,) = issue_slips_to_pay(session, cipher, 1)
    channel = "card" if adapter == "stripe" else "paypay"
    adapters = app.extensions["kokin.adapters"]
    attempt = payments.start_payment(
        session, {channel: adapters[adapter]}, municipality_id=slip.municipality_id, slip_number=slip.number,
        channel=channel, return_url="https://ward.test/r", cancel_url="https://ward.test/c",
        fee_schedules=app.config["FEE_SCHEDULES"], actor="resident").attempt
    assert attempt.provider_ref is not None and ward_code_of_reference(attempt.reference) is None
    if adapter == "stripe":
        headers, body = _completed(app, attempt.provider_ref)
        url = "/webhooks/stripe"
    else:
        headers, body, token = _paypay_paid(app, attempt.provider_ref)
        url = f"/webhooks/paypay?token={token}"

    answers = [client.post(url, data=body, headers=headers).json["received"] for _ in range(2)]

    assert answers == ["applied", "duplicate"]
    session.expire_all()
    assert session.scalar(select(Payment.applied).where(Payment.slip_id == slip.id)) is True
    assert list(session.scalars(select(WebhookDelivery.chain))) == [slip.municipality_id]


@pytest.mark.parametrize("reference", ["naming its ward", "made before"])
def test_the_same_notification_delivered_by_many_workers_at_once_is_applied_once(
        app: Flask, database: Database, session: Session, cipher: DataCipher, monkeypatch: pytest.MonkeyPatch,
        reference: str) -> None:
    """Stripe's retries can overlap: THREADS deliveries of one event race; one applies it, the rest are duplicates."""
    if reference == "made before":
        monkeypatch.setattr(payments, "new_attempt_reference", lambda _session, _ward: f"kk-{uuid.uuid4().hex}")
    (slip,) = issue_slips_to_pay(session, cipher, 1)
    attempt = open_card_payment(app, session, slip).attempt
    assert attempt.provider_ref is not None
    headers, body = _completed(app, attempt.provider_ref)
    stripe = app.extensions["kokin.adapters"]["stripe"]
    barrier = threading.Barrier(THREADS)

    def deliver(_: int) -> str:
        with database.session() as own:
            barrier.wait(timeout=30)
            return receive_webhook(own, stripe, dict(headers), body, utcnow())

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        answers = Counter(pool.map(deliver, range(THREADS)))

    assert answers == {"applied": 1, "duplicate": THREADS - 1}
    session.expire_all()
    assert list(session.scalars(select(WebhookDelivery.chain))) == [slip.municipality_id]
    assert session.scalar(select(PaymentAttempt.status).where(PaymentAttempt.id == attempt.id)) == "succeeded"
    assert session.execute(select(Payment.applied, Payment.overpaid).where(Payment.slip_id == slip.id)).all() == [
        (True, False)]
    kinds = Counter(session.scalars(select(Event.kind).where(Event.kind.in_(("attempt.succeed", "payment.applied")))))
    assert kinds == {"attempt.succeed": 1, "payment.applied": 1}
