"""Stripe payloads for the wire tests, shaped like the API reference (https://docs.stripe.com/api).

Shared by test_stripe.py, test_stripe_webhooks.py and test_stripe_simulator.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from adapters.base import CheckoutRequest
from adapters.stripe import StripeAdapter, make_adapter

API = "https://api.stripe.com/v1"
SECRET = "whsec_test_secret"
SESSION_ID = "cs_test_a1YSb0bMgw6SkcVrILt5pRM0vCqJpRAMC6zGCmSYzgGiWLx7R8YkGlnK5V"
INTENT_ID = "pi_3PqWd2LkdIwHu7ix0YxzAbCd"
CHARGE_ID = "ch_3PqWd2LkdIwHu7ix0ZyxBcDe"
CREATED = 1_775_000_000  # 2026-03-31T23:33:20Z
NOW = datetime.fromtimestamp(CREATED + 60, UTC)


def production_adapter(max_network_retries: int = 0) -> StripeAdapter:
    """The adapter as production builds it (real api.stripe.com URLs, requests underneath)."""
    return make_adapter(
        {
            "secret_key": "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "webhook_secret": SECRET,
            "max_network_retries": max_network_retries,
        }
    )


def checkout_request(key: str = "attempt-0001-key") -> CheckoutRequest:
    return CheckoutRequest(
        reference="KOKIN-0001",
        amount=1234,
        description="住民税 令和8年度 第1期",
        return_url="https://pay.example.lg.jp/return",
        cancel_url="https://pay.example.lg.jp/cancel",
        idempotency_key=key,
    )


def session_json(
    status: str = "open", payment_status: str = "unpaid", intent: Any = None, **extra: Any
) -> dict[str, Any]:
    body = {
        "id": SESSION_ID,
        "object": "checkout.session",
        "amount_subtotal": 1234,
        "amount_total": 1234,
        "cancel_url": "https://pay.example.lg.jp/cancel",
        "client_reference_id": "KOKIN-0001",
        "created": CREATED,
        "currency": "jpy",
        "customer": None,
        "expires_at": CREATED + 86_400,
        "livemode": False,
        "metadata": {"reference": "KOKIN-0001"},
        "mode": "payment",
        "payment_intent": intent,
        "payment_method_types": ["card"],
        "payment_status": payment_status,
        "status": status,
        "success_url": "https://pay.example.lg.jp/return",
        "ui_mode": "hosted",
        "url": f"https://checkout.stripe.com/c/pay/{SESSION_ID}" if status == "open" else None,
    }
    body.update(extra)
    return body


def charge_json(status: str = "succeeded", brand: str = "jcb", last4: str = "0000") -> dict[str, Any]:
    return {
        "id": CHARGE_ID,
        "object": "charge",
        "amount": 1234,
        "amount_captured": 1234,
        "amount_refunded": 0,
        "created": CREATED + 30,
        "currency": "jpy",
        "paid": status == "succeeded",
        "payment_intent": INTENT_ID,
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": brand,
                "country": "JP",
                "exp_month": 8,
                "exp_year": 2029,
                "funding": "credit",
                "last4": last4,
            },
        },
        "status": status,
    }


def intent_json(status: str = "succeeded", charge: Any = None) -> dict[str, Any]:
    return {
        "id": INTENT_ID,
        "object": "payment_intent",
        "amount": 1234,
        "amount_received": 1234 if status == "succeeded" else 0,
        "currency": "jpy",
        "latest_charge": charge,
        "metadata": {"reference": "KOKIN-0001"},
        "status": status,
    }


def error_json(kind: str, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return {"error": error}


def event_body(kind: str = "checkout.session.completed", obj: dict[str, Any] | None = None) -> bytes:
    event = {
        "id": "evt_1PqWd2LkdIwHu7ixAbCdEfGh",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": CREATED + 31,
        "data": {"object": obj if obj is not None else session_json("complete", "paid", INTENT_ID)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }
    return json.dumps(event, indent=2).encode()
