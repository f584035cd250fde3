"""Square Terminal API checkouts (e-money at the certificate counter) in the terms of adapters.base.

A checkout is sent to a paired Square Terminal (`device_id`) for one payment type: transport
IC (FELICA_TRANSPORTATION_GROUP), iD (FELICA_ID), QUICPay (FELICA_QUICPAY), any of them
(FELICA_ALL), a QR code wallet (QR_CODE) or a card (CARD_PRESENT). It moves PENDING ->
IN_PROGRESS -> COMPLETED or CANCELED (via CANCEL_REQUESTED); the result arrives by a signed
`terminal.checkout.updated` notification or by polling. References: the Terminal API
(https://developer.squareup.com/reference/square/terminal-api), the TerminalCheckout and
PaymentRefund objects, the Refunds API and "Validate webhook notifications"
(https://developer.squareup.com/docs/webhooks/step3validate).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from adapters.base import (
    WEBHOOK_TOLERANCE_SECONDS,
    Capability,
    Checkout,
    CheckoutRequest,
    Outcome,
    PaymentStatus,
    PermanentError,
    RefundRequest,
    RefundResult,
    SettledPayment,
    SignatureError,
    WebhookEvent,
    header_value,
    load_json,
)
from adapters.square.client import SquareClient, SquarePermanentError
from domain.calendar import TOKYO as _TOKYO

if TYPE_CHECKING:
    from adapters.square.simulator import SquareSimulator

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
CHECKOUT_UPDATED = "terminal.checkout.updated"
# Square's CheckoutOptionsPaymentType values a Japanese counter uses.
PAYMENT_TYPES = frozenset({"FELICA_TRANSPORTATION_GROUP", "FELICA_ID", "FELICA_QUICPAY", "FELICA_ALL",
                           "QR_CODE", "CARD_PRESENT"})
FELICA_TYPES = frozenset(t for t in PAYMENT_TYPES if t.startswith("FELICA_"))
DEADLINE = "PT5M"  # TerminalCheckout.deadline_duration: the default and the maximum
_DEFAULT_DEADLINE = timedelta(minutes=5)
MAX_NOTIFICATION_SKEW = timedelta(seconds=WEBHOOK_TOLERANCE_SECONDS)
_REFERENCE_MAX = 40  # TerminalCheckout.reference_id
_NOTE_MAX = 500  # TerminalCheckout.note
_REASON_MAX = 192  # RefundPaymentRequest.reason
_CHECKOUT_KEY_MAX = 64  # CreateTerminalCheckoutRequest.idempotency_key
_REFUND_KEY_MAX = 45  # RefundPaymentRequest.idempotency_key
_SQUARE_ID = re.compile(r"[A-Za-z0-9_-]{1,192}")
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")

# TerminalCheckout.status; CANCELED is refined by cancel_reason (see _outcome).
STATUS_OUTCOMES = {
    "PENDING": Outcome.PENDING,
    "IN_PROGRESS": Outcome.PENDING,
    "CANCEL_REQUESTED": Outcome.PENDING,  # the device may still complete it
    "COMPLETED": Outcome.SUCCEEDED,
}
# ActionCancelReason: TIMED_OUT (deadline passed) vs BUYER_CANCELED / SELLER_CANCELED.
CANCEL_REASON_OUTCOMES = {"TIMED_OUT": Outcome.EXPIRED}
# PaymentRefund.status.
REFUND_OUTCOMES = {"PENDING": Outcome.PENDING, "COMPLETED": Outcome.SUCCEEDED, "REJECTED": Outcome.FAILED,
                   "FAILED": Outcome.FAILED}


class SquareAdapter:
    """Square Terminal checkouts: create on a device, poll, cancel, refund, signed notifications."""

    name = "square"
    capabilities = (Capability.TERMINAL | Capability.POLL | Capability.WEBHOOK | Capability.SIGNED_WEBHOOK
                    | Capability.CANCEL | Capability.REFUND | Capability.PARTIAL_REFUND | Capability.SETTLEMENT_REPORT)

    def __init__(self, client: SquareClient, *, signature_key: str, notification_url: str,
                 device_id: str | None = None, payment_type: str | None = None,
                 simulator: SquareSimulator | None = None) -> None:
        if not signature_key:
            raise ValueError("square: signature_key must be a non-empty secret")
        if not notification_url.startswith(("https://", "http://")):
            raise ValueError("square: notification_url must be the URL registered with Square")
        if payment_type is not None and payment_type not in PAYMENT_TYPES:
            raise ValueError(f"square: payment_type must be one of {', '.join(sorted(PAYMENT_TYPES))}")
        self.client = client
        self.simulator = simulator  # the SquareSimulator behind the client in sandbox mode, else None
        self._signature_key = signature_key.encode("utf-8")
        self._notification_url = notification_url.encode("utf-8")
        # Defaults for a request that names no device / payment type (a one-terminal setup).
        self._device_id = device_id
        self._payment_type = payment_type

    # -- checkout ---------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Send the checkout to the device: `POST /v2/terminals/checkouts`.

        Idempotent through Square on the idempotency key (the same key answers the same
        checkout). The request's device_id and payment_type (or the adapter's configured
        defaults) are required; the checkout times out on the device after PT5M.
        """
        device_id = request.device_id or self._device_id
        payment_type = request.payment_type or self._payment_type
        if not device_id:
            raise PermanentError("square: a terminal checkout needs a device_id")
        if not payment_type:
            raise PermanentError("square: a terminal checkout needs a payment_type")
        if payment_type not in PAYMENT_TYPES:
            raise PermanentError(f"square: payment_type {payment_type!r} is not one this counter takes")
        _check_amount(request.amount)
        if not request.reference or len(request.reference) > _REFERENCE_MAX or not request.reference.isascii():
            raise PermanentError(f"square: reference must be 1-{_REFERENCE_MAX} ASCII characters")
        payload = {
            "idempotency_key": square_key(request.idempotency_key, _CHECKOUT_KEY_MAX),
            "checkout": {
                "amount_money": {"amount": request.amount, "currency": "JPY"},
                "reference_id": request.reference,
                "note": request.description[:_NOTE_MAX],
                "device_options": {"device_id": device_id},
                "payment_type": payment_type,
                "deadline_duration": DEADLINE,
            },
        }
        checkout = _checkout_of(self.client.request("POST", "/v2/terminals/checkouts", payload))
        if _amount_of(checkout) != request.amount or checkout.get("reference_id") != request.reference:
            raise PermanentError("square: the checkout Square answered does not match the request "
                                 "(idempotency key reused for another payment?)")
        created_at = _parse_time(checkout.get("created_at"))
        deadline = _duration(checkout.get("deadline_duration")) or _DEFAULT_DEADLINE
        return Checkout(provider_ref=_id_of(checkout),
                        expires_at=created_at + deadline if created_at is not None else None)

    # -- status -----------------------------------------------------------------------------

    def fetch_status(self, provider_ref: str) -> PaymentStatus:
        """Poll `GET /v2/terminals/checkouts/{id}`; RetryableError means ask again later."""
        checkout = self._checkout(provider_ref)
        outcome = _outcome(checkout)
        raw = _raw_status(checkout)
        if outcome is not Outcome.SUCCEEDED:
            return PaymentStatus(provider_ref=provider_ref, outcome=outcome, raw_status=raw)
        payment_type = checkout.get("payment_type")
        return PaymentStatus(provider_ref=provider_ref, outcome=outcome, amount=_amount_of(checkout),
                             paid_at=_parse_time(checkout.get("updated_at")),
                             card_brand=str(payment_type) if payment_type else None, raw_status=raw)

    def _checkout(self, checkout_id: str) -> dict[str, Any]:
        return _checkout_of(self.client.request("GET", f"/v2/terminals/checkouts/{_square_id(checkout_id)}"))

    # -- cancel -----------------------------------------------------------------------------

    def cancel(self, provider_ref: str) -> None:
        """Cancel an open checkout: `POST /v2/terminals/checkouts/{id}/cancel`.

        Square refuses once the buyer is at the device with e-money (PermanentError: wait for
        the device to finish, then refund if it was paid). Cancelling a checkout that already
        ended unpaid is a no-op; one that was paid raises PermanentError (refund it instead).
        """
        checkout_id = _square_id(provider_ref)
        try:
            self.client.request("POST", f"/v2/terminals/checkouts/{checkout_id}/cancel")
        except SquarePermanentError as exc:
            if exc.status == 404:
                raise
            checkout = self._checkout(checkout_id)
            status = checkout.get("status")
            if status == "CANCELED":
                return
            if status == "COMPLETED":
                raise PermanentError(f"square: {checkout_id} is already paid; refund it instead") from exc
            raise PermanentError(f"square: {checkout_id} cannot be cancelled now ({status}): {exc}") from exc

    # -- refund -----------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund all or part of a completed checkout's payment through `POST /v2/refunds`.

        Square answers a repeated idempotency key with the first refund. With
        request.refund_ref, `GET /v2/refunds/{id}` reports where that refund stands and
        nothing is refunded again. A refund usually starts PENDING and becomes COMPLETED.
        """
        _check_amount(request.amount)
        checkout = self._checkout(request.provider_ref)
        payment_ids = checkout.get("payment_ids")
        payment_id = payment_ids[0] if isinstance(payment_ids, list) and payment_ids else None
        if checkout.get("status") != "COMPLETED" or not isinstance(payment_id, str) or not payment_id:
            raise PermanentError(f"square: {request.provider_ref} is not a completed payment")
        if request.refund_ref is not None:
            refund = _refund_of(self.client.request("GET", f"/v2/refunds/{_square_id(request.refund_ref)}"))
            if refund.get("payment_id") not in (None, payment_id):
                raise PermanentError(f"square: refund {request.refund_ref} is not of {request.provider_ref}")
            return _refund_result(refund)
        payload = {
            "idempotency_key": square_key(request.idempotency_key, _REFUND_KEY_MAX),
            "payment_id": payment_id,
            "amount_money": {"amount": request.amount, "currency": "JPY"},
            "reason": request.reason[:_REASON_MAX],
        }
        return _refund_result(_refund_of(self.client.request("POST", "/v2/refunds", payload)))

    # -- notifications ----------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """Verify Square's signature over notification URL + raw body, then parse.

        x-square-hmacsha256-signature = Base64(HMAC-SHA256(signature key, URL + body)), the URL
        being the one registered with Square (our config). Square signs the body, so the
        event's `created_at` is a signed time: more than 300 s from `now` is refused.
        """
        presented = header_value(headers, SIGNATURE_HEADER)
        if not presented:
            raise SignatureError("square: notification without x-square-hmacsha256-signature")
        if not hmac.compare_digest(presented.strip().encode("utf-8"), self.signature_for(body).encode("ascii")):
            raise SignatureError("square: notification signature does not match")
        payload = load_json(body, "square")
        if not isinstance(payload, dict):
            raise PermanentError("square: notification body is not a JSON object")
        created_at = _parse_time(payload.get("created_at"))
        if created_at is None:
            raise SignatureError("square: notification without a signed created_at")
        if abs(now - created_at) > MAX_NOTIFICATION_SKEW:
            raise SignatureError("square: notification created more than 300 s from now")
        event_id = payload.get("event_id")
        kind = str(payload.get("type") or "")
        data = _object(payload.get("data"))
        checkout = _object(_object(data.get("object")).get("checkout"))
        reference = provider_ref = outcome = None
        occurred_at = created_at
        if kind == CHECKOUT_UPDATED and checkout:
            reference = checkout.get("reference_id") if isinstance(checkout.get("reference_id"), str) else None
            provider_ref = _id_of(checkout)
            outcome = _outcome(checkout)
            occurred_at = _parse_time(checkout.get("updated_at")) or created_at
        elif isinstance(data.get("id"), str):
            provider_ref = data["id"]
        return WebhookEvent(
            event_id=str(event_id) if event_id else "sha256:" + hashlib.sha256(body).hexdigest(),
            type=kind or "unknown",
            reference=reference,
            provider_ref=provider_ref,
            outcome=outcome,
            occurred_at=occurred_at,
        )

    def settlement_report(self, day: date) -> list[SettledPayment]:
        """The payments completed on `day` (Asia/Tokyo): ListPayments over that day, every page."""
        begin = datetime.combine(day, time(0), tzinfo=_TOKYO).astimezone(UTC)
        window = f"begin_time={_rfc3339(begin)}&end_time={_rfc3339(begin + timedelta(days=1))}&sort_order=ASC"
        settled: list[SettledPayment] = []
        cursor: str | None = None
        while True:
            page = self.client.request("GET", f"/v2/payments?{window}" + (f"&cursor={cursor}" if cursor else ""))
            for payment in page.get("payments") or []:
                if isinstance(payment, dict) and payment.get("status") == "COMPLETED":
                    settled.append(SettledPayment(
                        provider_payment_id=str(payment.get("id")), reference=payment.get("reference_id"),
                        amount=_amount_of(payment), payment_type=str(payment.get("source_type") or ""),
                        settled_at=_parse_time(payment.get("created_at")) or begin))
            cursor = page.get("cursor")
            if not cursor:
                return settled

    def signature_for(self, body: bytes) -> str:
        """Return the x-square-hmacsha256-signature Square sends with `body` to our URL."""
        mac = hmac.new(self._signature_key, self._notification_url + body, hashlib.sha256).digest()
        return base64.b64encode(mac).decode("ascii")


def square_key(idempotency_key: str, limit: int) -> str:
    """Return Square's idempotency key for ours: itself when short ASCII, else a stable digest."""
    if idempotency_key and idempotency_key.isascii() and len(idempotency_key) <= limit:
        return idempotency_key
    return "k" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:limit - 1]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _outcome(checkout: Mapping[str, Any]) -> Outcome:
    status = str(checkout.get("status") or "")
    if status == "CANCELED":
        return CANCEL_REASON_OUTCOMES.get(str(checkout.get("cancel_reason") or ""), Outcome.CANCELLED)
    return STATUS_OUTCOMES.get(status, Outcome.UNKNOWN)


def _raw_status(checkout: Mapping[str, Any]) -> str:
    status = str(checkout.get("status") or "")
    reason = checkout.get("cancel_reason")
    return f"{status}/{reason}" if status == "CANCELED" and reason else status


def _square_id(value: str) -> str:
    if not isinstance(value, str) or not _SQUARE_ID.fullmatch(value):
        raise PermanentError("square: an id must be 1-192 characters of A-Z a-z 0-9 - _")
    return value


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise PermanentError("square: amount must be a positive integer number of yen")


def _checkout_of(document: Mapping[str, Any]) -> dict[str, Any]:
    checkout = document.get("checkout")
    if not isinstance(checkout, dict):
        raise PermanentError("square: response without a checkout")
    return checkout


def _refund_of(document: Mapping[str, Any]) -> dict[str, Any]:
    refund = document.get("refund")
    if not isinstance(refund, dict):
        raise PermanentError("square: response without a refund")
    return refund


def _id_of(obj: Mapping[str, Any]) -> str:
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise PermanentError("square: object without an id")
    return value


def _amount_of(obj: Mapping[str, Any]) -> int:
    money = obj.get("amount_money")
    if isinstance(money, dict) and money.get("currency") == "JPY":
        value = money.get("amount")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise PermanentError("square: response without an integer JPY amount_money")


def _refund_result(refund: Mapping[str, Any]) -> RefundResult:
    outcome = REFUND_OUTCOMES.get(str(refund.get("status") or ""), Outcome.PENDING)
    return RefundResult(refund_ref=_id_of(refund), outcome=outcome, amount=_amount_of(refund))


def _duration(value: Any) -> timedelta | None:
    """Read an RFC 3339 / ISO 8601 duration of days, hours, minutes and seconds (e.g. PT5M)."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value not in ("P", "PT") else None
    if match is None:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
