"""Stripe webhook deliveries: signature test vectors computed here with hmac, and event translation.

The vectors are built independently of the adapter's signing code, from the documented
scheme: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.base import Outcome, PermanentError, SignatureError
from adapters.stripe import StripeAdapter
from adapters.stripe.client import StripeApi
from tests.contract.stripe_payloads import (
    CREATED,
    INTENT_ID,
    NOW,
    SECRET,
    SESSION_ID,
    charge_json,
    event_body,
    intent_json,
    production_adapter,
    session_json,
)


@pytest.fixture
def stripe_adapter() -> StripeAdapter:
    return production_adapter()


def v1(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed(body: bytes, timestamp: int, *signatures: str) -> dict[str, str]:
    values = signatures or (v1(body, timestamp),)
    return {"Stripe-Signature": ",".join([f"t={timestamp}", *(f"v1={s}" for s in values)])}


def test_a_delivery_signed_with_the_endpoint_secret_is_accepted(stripe_adapter: StripeAdapter) -> None:
    body = event_body()
    t = int(NOW.timestamp())

    event = stripe_adapter.verify_webhook(signed(body, t), body, NOW)

    assert event.event_id == "evt_1PqWd2LkdIwHu7ixAbCdEfGh"
    assert (event.reference, event.provider_ref, event.outcome) == ("KOKIN-0001", SESSION_ID, Outcome.SUCCEEDED)
    assert event.occurred_at == datetime.fromtimestamp(CREATED + 31, UTC)


def test_the_signature_header_name_is_matched_without_regard_to_case(stripe_adapter: StripeAdapter) -> None:
    body = event_body()
    t = int(NOW.timestamp())

    stripe_adapter.verify_webhook({"stripe-signature": signed(body, t)["Stripe-Signature"]}, body, NOW)


@pytest.mark.parametrize("changed", [b"1234", b"KOKIN-0001"])
def test_a_delivery_whose_body_was_changed_is_refused(stripe_adapter: StripeAdapter, changed: bytes) -> None:
    body = event_body()
    t = int(NOW.timestamp())
    tampered = body.replace(changed, changed[:-1] + b"9")

    with pytest.raises(SignatureError):
        stripe_adapter.verify_webhook(signed(body, t), tampered, NOW)


def test_a_delivery_signed_with_another_secret_is_refused(stripe_adapter: StripeAdapter) -> None:
    body = event_body()
    t = int(NOW.timestamp())

    with pytest.raises(SignatureError):
        stripe_adapter.verify_webhook(signed(body, t, v1(body, t, "whsec_other")), body, NOW)


@pytest.mark.parametrize("offset", [301, -301, 86_400])
def test_a_delivery_signed_more_than_300_seconds_from_now_is_refused(
    stripe_adapter: StripeAdapter, offset: int
) -> None:
    body = event_body()
    t = int(NOW.timestamp()) - offset

    with pytest.raises(SignatureError):
        stripe_adapter.verify_webhook(signed(body, t), body, NOW)


def test_a_delivery_signed_exactly_300_seconds_ago_is_accepted(stripe_adapter: StripeAdapter) -> None:
    body = event_body()
    t = int(NOW.timestamp()) - 300

    stripe_adapter.verify_webhook(signed(body, t), body, NOW)


def test_a_replayed_signature_with_a_new_timestamp_is_refused(stripe_adapter: StripeAdapter) -> None:
    body = event_body()
    old = int(NOW.timestamp()) - 3_600
    header = f"t={int(NOW.timestamp())},v1={v1(body, old)}"

    with pytest.raises(SignatureError):
        stripe_adapter.verify_webhook({"Stripe-Signature": header}, body, NOW)


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_during_secret_rotation_any_of_several_v1_signatures_may_match(
    stripe_adapter: StripeAdapter, order: str
) -> None:
    body = event_body()
    t = int(NOW.timestamp())
    pair = [v1(body, t, "whsec_retired"), v1(body, t)]

    stripe_adapter.verify_webhook(signed(body, t, *(pair if order == "old-first" else pair[::-1])), body, NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Stripe-Signature": ""},
        {"Stripe-Signature": "v1=" + "0" * 64},
        {"Stripe-Signature": f"t={CREATED}"},
        {"Stripe-Signature": f"t=abc,v1={'0' * 64}"},
        {"Stripe-Signature": f"t=１２３,v1={'0' * 64}"},
        {"Stripe-Signature": f"t={CREATED},t={CREATED + 1},v1={'0' * 64}"},
        {"Stripe-Signature": f"t={CREATED},v0={'0' * 64}"},
        {"Stripe-Signature": f"t={CREATED},v1=ünïcode"},
    ],
    ids=[
        "missing",
        "empty",
        "no-timestamp",
        "no-v1",
        "timestamp-not-a-number",
        "full-width-digits",
        "two-timestamps",
        "only-v0",
        "non-ascii-signature",
    ],
)
def test_a_delivery_without_a_usable_signature_header_is_refused(
    stripe_adapter: StripeAdapter, headers: dict[str, str]
) -> None:
    with pytest.raises(SignatureError):
        stripe_adapter.verify_webhook(headers, event_body(), NOW)


def test_a_signed_body_that_is_not_an_event_is_a_permanent_error_not_a_signature_error(
    stripe_adapter: StripeAdapter,
) -> None:
    body = b'{"hello": "world"}'
    t = int(NOW.timestamp())

    with pytest.raises(PermanentError) as raised:
        stripe_adapter.verify_webhook(signed(body, t), body, NOW)
    assert not isinstance(raised.value, SignatureError)


def test_an_empty_webhook_secret_verifies_nothing() -> None:
    adapter = StripeAdapter(StripeApi("sk_test_x"), webhook_secret="")
    body = event_body()
    t = int(NOW.timestamp())

    with pytest.raises(SignatureError):
        adapter.verify_webhook(signed(body, t, v1(body, t, "")), body, NOW)


# -- event translation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "obj", "outcome", "provider_ref"),
    [
        ("checkout.session.completed", session_json("complete", "paid", INTENT_ID), Outcome.SUCCEEDED, SESSION_ID),
        ("checkout.session.completed", session_json("complete", "unpaid", INTENT_ID), None, SESSION_ID),
        ("checkout.session.async_payment_succeeded", session_json("complete", "paid"), Outcome.SUCCEEDED, SESSION_ID),
        ("checkout.session.async_payment_failed", session_json("complete", "unpaid"), Outcome.FAILED, SESSION_ID),
        ("checkout.session.expired", session_json("expired"), Outcome.EXPIRED, SESSION_ID),
        ("payment_intent.payment_failed", intent_json("requires_payment_method"), None, None),
        ("payment_intent.succeeded", intent_json("succeeded"), None, None),
        ("charge.refunded", {**charge_json(), "metadata": {"reference": "KOKIN-0001"}}, None, None),
        ("customer.created", {"id": "cus_1", "object": "customer", "metadata": {}}, None, None),
    ],
    ids=[
        "completed-paid",
        "completed-unpaid",
        "async-succeeded",
        "async-failed",
        "expired",
        "intent-failed-is-a-hint",
        "intent-succeeded-is-a-hint",
        "refunded",
        "unknown-type",
    ],
)
def test_events_translate_to_outcomes_and_references(
    stripe_adapter: StripeAdapter, kind: str, obj: dict[str, Any], outcome: Outcome | None, provider_ref: str | None
) -> None:
    body = event_body(kind, obj)

    event = stripe_adapter.verify_webhook(signed(body, int(NOW.timestamp())), body, NOW)

    assert (event.type, event.outcome, event.provider_ref) == (kind, outcome, provider_ref)
    assert event.reference == (None if kind == "customer.created" else "KOKIN-0001")
