"""A notification that verifies but cannot be read is never a 500 (providers retry a 500 for days).

It is recorded once for staff (audit event webhook.malformed) and answered as the provider
needs: 400 to Stripe and Square, whose signed notifications carry outcomes and are
delivered again on any status but 2xx (a corrected gateway still applies them); 200
"rejected" to PayPay, whose notification is only a hint to poll.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.square.adapter import SIGNATURE_HEADER
from adapters.stripe.signature import signature_header
from gateway.models import Event, WebhookDelivery

DEEP = b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"


def _stripe_event(**changes: Any) -> bytes:
    event = {"id": "evt_1", "type": "checkout.session.completed", "created": int(datetime.now(UTC).timestamp()),
             "data": {"object": {"object": "checkout.session", "id": "cs_test_1", "payment_status": "paid",
                                 "client_reference_id": "KOKIN-0001"}}}
    return json.dumps({**event, **changes}).encode()


def _square_event(**changes: Any) -> bytes:
    event = {"event_id": "e-1", "type": "terminal.checkout.updated", "created_at": datetime.now(UTC).isoformat(),
             "data": {"id": "c-1", "object": {"checkout": {"id": "c-1", "reference_id": "KOKIN-0001",
                                                           "status": "COMPLETED"}}}}
    return json.dumps({**event, **changes}).encode()


def _paypay_event(**changes: Any) -> bytes:
    event = {"notification_type": "Transaction", "notification_id": "n-1", "merchant_order_id": "KOKIN-0001",
             "state": "CREATED", "createdAt": datetime.now(UTC).isoformat()}
    return json.dumps({**event, **changes}).encode()


def _signed(app: Any, adapter: str, body: bytes) -> dict[str, str]:
    provider = app.extensions["kokin.adapters"][adapter]
    if adapter == "stripe":
        now = int(datetime.now(UTC).timestamp())
        return {"Stripe-Signature": signature_header(body, provider._webhook_secret, now)}
    if adapter == "square":
        return {SIGNATURE_HEADER: provider.signature_for(body)}
    return {"X-Kokin-Webhook-Token": provider._webhook_token.decode()}


# Each body made when its test runs: a signature (and a timestamp in it) is only good for minutes.
MALFORMED: dict[str, list[Callable[[], bytes]]] = {
    "stripe": [lambda: b"not json", lambda: b"[1, 2]", lambda: DEEP, lambda: b'{"id": "evt_2"}',
               lambda: _stripe_event(id="evt_\u0000"), lambda: _stripe_event(id="e" * 300),
               lambda: _stripe_event(id=12),
               lambda: _stripe_event(data={"object": {"object": "checkout.session", "id": {"x": 1}}}),
               lambda: _stripe_event(type="checkout.session.expired",
                                     data={"object": {"object": "checkout.session", "id": "cs_\u0000"}})],
    "square": [lambda: b"not json", lambda: b"[]", lambda: DEEP, lambda: _square_event(event_id="e\u0000"),
               lambda: _square_event(event_id="\ud800")],
    "paypay": [lambda: b"not json", lambda: b"[]", lambda: DEEP, lambda: _paypay_event(merchant_order_id="K\u0000"),
               lambda: _paypay_event(notification_id="n" * 300)],
}
CASES = [(adapter, make) for adapter, makers in MALFORMED.items() for make in makers]


def _recorded(session: Any) -> list[dict[str, Any]]:
    session.expire_all()
    return [e.data for e in session.scalars(select(Event).where(Event.kind == "webhook.malformed"))]


@pytest.mark.parametrize(("adapter", "make"), CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)])
def test_a_verified_but_malformed_notification_is_recorded_and_answered_without_a_500(
        app, client, session, adapter: str, make: Callable[[], bytes]) -> None:  # type: ignore[no-untyped-def]
    body = make()
    response = client.post(f"/webhooks/{adapter}", data=body, headers=_signed(app, adapter, body),
                           content_type="application/json")

    if adapter == "paypay":
        assert response.status_code == 200 and response.json == {"received": "rejected"}, response.json
    else:
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.json["error"]["code"] == "malformed_notification"
    (recorded,) = _recorded(session)
    assert recorded["adapter"] == adapter and recorded["bytes"] == len(body) and "\x00" not in recorded["reason"]


def test_a_malformed_notification_delivered_again_is_recorded_once(app, client, session) -> None:  # type: ignore[no-untyped-def]
    body = b'{"id": "evt_2"}'
    for _ in range(3):  # Stripe retries a 400
        assert client.post("/webhooks/stripe", data=body, headers=_signed(app, "stripe", body)).status_code == 400
    assert len(_recorded(session)) == 1
    assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
    assert session.scalar(select(WebhookDelivery.chain)) == 0  # it names no attempt: the service's own chain


def test_an_unsigned_malformed_notification_is_refused_and_not_recorded(client, session) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/webhooks/stripe", data=DEEP, headers={"Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_signature"
    assert _recorded(session) == []


def test_a_signed_event_with_a_time_no_calendar_holds_is_not_a_500(app, client) -> None:  # type: ignore[no-untyped-def]
    body = _stripe_event(created=2**64)  # read as "no time": the event is judged by what it names
    response = client.post("/webhooks/stripe", data=body, headers=_signed(app, "stripe", body))
    assert response.status_code == 404 and response.json["error"]["message"] == "no such payment attempt"
