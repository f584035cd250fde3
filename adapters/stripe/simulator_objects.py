"""The simulator's Stripe objects and errors, shaped like Stripe's documented JSON.

Field names and values follow the API reference (https://docs.stripe.com/api) for the
objects the adapter reads; fields it never reads are kept only where they make a payload
recognisable to someone comparing it with a real one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import stripe

MIN_JPY = 50  # Stripe's minimum charge amount in JPY
MAX_JPY = 99_999_999  # the largest amount Stripe accepts in a zero-decimal currency
MIN_LIFETIME = timedelta(minutes=30)  # Checkout `expires_at` must be 30 min to 24 h away
MAX_LIFETIME = timedelta(hours=24)


class ApiError(Exception):
    """An error response in Stripe's shape: `{"error": {"type", "code", "message", "param"}}`."""

    def __init__(self, status: int, kind: str, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.code, self.param = status, kind, message, code, param

    @classmethod
    def missing(cls, kind: str, object_id: str, *, param: str = "id") -> ApiError:
        return cls(404, "invalid_request_error", f"No such {kind}: '{object_id}'", code="resource_missing", param=param)

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.code:
            body["code"] = self.code
            body["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            body["param"] = self.param
        return body


def validate_checkout(params: Mapping[str, Any], now: datetime) -> None:
    """Refuse what Stripe refuses among the parameters the adapter sends (HTTP 400)."""
    for required in ("mode", "line_items", "success_url"):
        if not params.get(required):
            raise ApiError(400, "invalid_request_error", f"Missing required param: {required}.", param=required)
    if params["mode"] != "payment":
        raise ApiError(400, "invalid_request_error", "The simulator supports mode=payment only.", param="mode")
    total = line_items_total(params["line_items"])
    if total < MIN_JPY:
        raise ApiError(
            400,
            "invalid_request_error",
            f"The Checkout Session's total amount due must add up to at least ¥{MIN_JPY}",
            code="amount_too_small",
        )
    if total > MAX_JPY:
        raise ApiError(
            400,
            "invalid_request_error",
            f"The Checkout Session's total amount due must be no more than ¥{MAX_JPY:,}",
            code="amount_too_large",
        )
    if len(str(params.get("client_reference_id", ""))) > 200:
        raise ApiError(
            400,
            "invalid_request_error",
            "client_reference_id is longer than 200 characters.",
            param="client_reference_id",
        )
    for field in ("metadata", "payment_intent_data"):
        _check_metadata(params.get(field) if field == "metadata" else (params.get(field) or {}).get("metadata"), field)
    if "expires_at" in params:
        _check_expiry(params["expires_at"], now)


def line_items_total(items: Any) -> int:
    """Sum `unit_amount * quantity` of JPY line items; 400 for anything else."""
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ApiError(400, "invalid_request_error", "Missing required param: line_items.", param="line_items")
    total = 0
    for index, item in enumerate(items):
        price = item.get("price_data") or {}
        if price.get("currency") != "jpy":
            raise ApiError(
                400, "invalid_request_error", "The simulator supports jpy only.", param=f"line_items[{index}]"
            )
        if not (price.get("product_data") or {}).get("name"):
            param = f"line_items[{index}][price_data][product_data][name]"
            raise ApiError(400, "invalid_request_error", f"Missing required param: {param}.", param=param)
        unit_amount = _integer(price.get("unit_amount"), f"line_items[{index}][price_data][unit_amount]")
        total += unit_amount * _integer(item.get("quantity"), f"line_items[{index}][quantity]")
    return total


def checkout_session(session_id: str, params: Mapping[str, Any], now: datetime, *, url: str) -> dict[str, Any]:
    """Return a new open `checkout.session` for validated `params`."""
    total = line_items_total(params["line_items"])
    created = int(now.timestamp())
    return {
        "id": session_id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "created": created,
        "currency": "jpy",
        "customer": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": None,
        "expires_at": int(params.get("expires_at") or created + MAX_LIFETIME.total_seconds()),
        "invoice": None,
        "livemode": False,
        "locale": params.get("locale"),
        "metadata": dict(params.get("metadata") or {}),
        "mode": "payment",
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_types": list(params.get("payment_method_types") or ["card"]),
        "payment_status": "unpaid",
        "status": "open",
        "submit_type": None,
        "success_url": params.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": url,
    }


def payment_intent(
    intent_id: str, session: Mapping[str, Any], metadata: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """Return the `payment_intent` Checkout creates at the resident's first attempt."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": session["amount_total"],
        "amount_capturable": 0,
        "amount_received": 0,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{intent_id}_secret_{secrets.token_urlsafe(18)}",
        "confirmation_method": "automatic",
        "created": int(now.timestamp()),
        "currency": session["currency"],
        "customer": None,
        "description": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": dict(metadata),
        "next_action": None,
        "payment_method": None,
        "payment_method_types": list(session["payment_method_types"]),
        "status": "requires_payment_method",
    }


def charge(
    charge_id: str, intent: Mapping[str, Any], now: datetime, *, paid: bool, brand: str, last4: str
) -> dict[str, Any]:
    """Return a succeeded or declined card `charge` of the intent's amount."""
    return {
        "id": charge_id,
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"] if paid else 0,
        "amount_refunded": 0,
        "balance_transaction": f"txn_{charge_id[3:]}" if paid else None,
        "captured": paid,
        "created": int(now.timestamp()),
        "currency": intent["currency"],
        "customer": None,
        "description": None,
        "disputed": False,
        "failure_code": None if paid else "card_declined",
        "failure_message": None if paid else "Your card was declined.",
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "outcome": {
            "network_status": "approved_by_network" if paid else "declined_by_network",
            "reason": None if paid else "generic_decline",
            "risk_level": "normal",
            "seller_message": "Payment complete."
            if paid
            else "The bank did not return any further details with this decline.",
            "type": "authorized" if paid else "issuer_declined",
        },
        "paid": paid,
        "payment_intent": intent["id"],
        "payment_method": f"pm_{charge_id[3:]}",
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": brand,
                "country": "JP",
                "exp_month": 12,
                "exp_year": now.year + 3,
                "funding": "credit",
                "last4": last4,
                "network": brand,
                "three_d_secure": None,
                "wallet": None,
            },
        },
        "refunded": False,
        "status": "succeeded" if paid else "failed",
    }


def balance_transaction(paid: Mapping[str, Any], now: datetime, *, fee_rate_per_mille: int) -> dict[str, Any]:
    """The balance transaction of a paid charge: gross amount, Stripe's fee, and the net it pays out."""
    fee = (paid["amount"] * fee_rate_per_mille + 500) // 1000
    return {
        "id": paid["balance_transaction"],
        "object": "balance_transaction",
        "amount": paid["amount"],
        "available_on": int(now.timestamp()) + 4 * 86_400,
        "created": int(now.timestamp()),
        "currency": paid["currency"],
        "description": None,
        "fee": fee,
        "fee_details": [{"amount": fee, "currency": paid["currency"], "description": "Stripe processing fees",
                         "type": "stripe_fee"}],
        "net": paid["amount"] - fee,
        "reporting_category": "charge",
        "source": paid["id"],
        "status": "pending",
        "type": "charge",
    }


def refund(
    refund_id: str, paid: Mapping[str, Any], amount: int, metadata: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """Return a card `refund` of `amount`; card refunds are accepted at once."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": f"txn_{refund_id[3:]}",
        "charge": paid["id"],
        "created": int(now.timestamp()),
        "currency": paid["currency"],
        "metadata": dict(metadata),
        "payment_intent": paid["payment_intent"],
        "reason": None,
        "receipt_number": None,
        "status": "succeeded",
    }


def event(event_id: str, kind: str, obj: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Return an `event` carrying a snapshot of `obj` as it is now."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(now.timestamp()),
        "data": {"object": dict(obj)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def _integer(value: Any, param: str) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()):
        raise ApiError(400, "invalid_request_error", "Invalid integer: " + text, param=param)
    return int(text)


def _check_metadata(metadata: Any, field: str) -> None:
    if not metadata:
        return
    if len(metadata) > 50 or any(len(k) > 40 or len(str(v)) > 500 for k, v in metadata.items()):
        raise ApiError(
            400,
            "invalid_request_error",
            "Metadata can have up to 50 keys of 40 characters and values of 500.",
            param=f"{field}[metadata]" if field != "metadata" else "metadata",
        )


def _check_expiry(value: Any, now: datetime) -> None:
    at = _integer(value, "expires_at")
    if at < (now + MIN_LIFETIME).timestamp():
        raise ApiError(
            400,
            "invalid_request_error",
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
            param="expires_at",
        )
    if at > (now + MAX_LIFETIME).timestamp():
        raise ApiError(
            400,
            "invalid_request_error",
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            param="expires_at",
        )
