"""PayPay dynamic QR (web payment) in the terms of adapters.base.

Polling `GET /v2/codes/payments/{merchantPaymentId}` is the source of truth; a notification is
only a hint to poll now (shared/domain/providers.md). PayPay citations below refer to the
Dynamic QR API document, https://www.paypay.ne.jp/opa/doc/v1.0/dynamicqrcode ("OPA doc"), the
SDK guides (github.com/paypay/paypayopa-sdk-java DynamicQRCode.md, "SDK guide") and the
integration FAQ at integration.paypay.ne.jp ("FAQ").
"""
from __future__ import annotations

import hashlib
import hmac
import re
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
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
from adapters.paypay.client import PayPayClient, PayPayPermanentError, PayPayRetryableError
from domain import clock as domain_clock

if TYPE_CHECKING:
    from adapters.paypay.simulator import PayPaySimulator

WEBHOOK_TOKEN_HEADER = "X-Kokin-Webhook-Token"  # noqa: S105 - a header name, not a secret
# OPA doc, MerchantPaymentIdSimple / MerchantRefundId: "<= 64, allowed a-z A-Z 0-9 - _".
_PAYPAY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DESCRIPTION_MAX = 255  # OPA doc: orderDescription maxLength 255; also Reason.
# A resident who confirmed just before expiryDate may complete a moment after it.
EXPIRY_GRACE = timedelta(seconds=60)
_CREATE_STRIPES = 64
_REMEMBER_AFTER_EXPIRY = timedelta(days=1)  # then cancel and polling use the fallbacks below
MAX_NOTIFICATION_SKEW = timedelta(seconds=WEBHOOK_TOLERANCE_SECONDS)
# Which payload field dates a Transaction notification of each state (github.com/mythrnr/
# paypayopa-sdk-go webhook.go, WebhookTransaction); other notifications carry createdAt.
_EVENT_TIME = {"COMPLETED": "paid_at", "AUTHORIZED": "authorized_at"}

# OPA doc, PaymentState.status. REFUNDED: the checkout was paid; the refund is its own record.
STATUS_OUTCOMES = {
    "CREATED": Outcome.PENDING,
    "COMPLETED": Outcome.SUCCEEDED,
    "REFUNDED": Outcome.SUCCEEDED,
    "FAILED": Outcome.FAILED,
    "CANCELED": Outcome.CANCELLED,
    "EXPIRED": Outcome.EXPIRED,
}
# OPA doc, RefundState: CREATED (accepted) -> REFUNDED; Get refund details may say FAILED.
REFUND_OUTCOMES = {"CREATED": Outcome.PENDING, "REFUNDED": Outcome.SUCCEEDED, "FAILED": Outcome.FAILED}


@dataclass(frozen=True)
class _Code:
    """What PayPay tells us once, at creation, and never again: the link and the codeId."""

    checkout: Checkout
    code_id: str
    amount: int
    forget_after: datetime
    deleted: bool = False


class PayPayAdapter:
    """PayPay dynamic QR codes: create, poll, cancel (delete the code), refund."""

    name = "paypay"
    capabilities = (Capability.QR | Capability.POLL | Capability.WEBHOOK | Capability.CANCEL
                    | Capability.REFUND | Capability.PARTIAL_REFUND)

    def __init__(self, client: PayPayClient, *, webhook_token: str, code_validity_secs: int | None = 600,
                 clock: Callable[[], datetime] | None = None, simulator: PayPaySimulator | None = None) -> None:
        if not webhook_token:
            raise ValueError("paypay: webhook_token must be a non-empty secret")
        self.client = client
        self.simulator = simulator  # the PayPaySimulator behind the client in sandbox mode, else None
        self._webhook_token = webhook_token.encode("utf-8")
        self._code_validity_secs = code_validity_secs
        self._now = clock or domain_clock.now
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()
        # Creates of one reference are serialised so a concurrent duplicate finds the first
        # one's link; striped, so unrelated references rarely wait on each other.
        self._create_locks = tuple(threading.Lock() for _ in range(_CREATE_STRIPES))

    # -- checkout ---------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Create an ORDER_QR code whose merchantPaymentId is request.reference.

        Idempotent through PayPay: a repeated merchantPaymentId is refused with
        DUPLICATE_DYNAMIC_QR_REQUEST, and this adapter answers with the checkout it was given
        the first time. PayPay returns the link only once, so if this process never saw it
        (the first response was lost) a PermanentError says to start a new attempt.
        """
        reference = _paypay_id(request.reference, "reference")
        _check_amount(request.amount)
        with self._create_locks[zlib.crc32(reference.encode("ascii")) % _CREATE_STRIPES]:
            try:
                response = self.client.request("POST", "/v2/codes", self._code_payload(request))
            except PayPayPermanentError as exc:
                if exc.code != "DUPLICATE_DYNAMIC_QR_REQUEST":
                    raise
                return self._existing_checkout(reference, request.amount)
            code = _code_from(response.data, reference, request.amount, self._now())
            self._remember(reference, code)
            return code.checkout

    def _remember(self, reference: str, code: _Code) -> None:
        now = self._now()
        with self._lock:
            self._codes[reference] = code
            # Oldest first (insertion order): forget codes a day past their expiry.
            while self._codes and (oldest := next(iter(self._codes.values()))).forget_after < now:
                del self._codes[oldest.checkout.provider_ref]

    def _code_payload(self, request: CheckoutRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "merchantPaymentId": request.reference,
            "amount": {"amount": request.amount, "currency": "JPY"},
            "codeType": "ORDER_QR",
            "orderDescription": request.description[:_DESCRIPTION_MAX],
            "isAuthorization": False,
            "redirectUrl": request.return_url,
            "redirectType": "WEB_LINK",
            "requestedAt": self._epoch(),
        }
        if self._code_validity_secs is not None:
            payload["codeValidityPeriodSecs"] = self._code_validity_secs
        return payload

    def _existing_checkout(self, reference: str, amount: int) -> Checkout:
        with self._lock:
            known = self._codes.get(reference)
        if known is not None and known.deleted:
            raise PermanentError(f"paypay: the checkout for {reference} was cancelled; use a new reference")
        if known is not None:
            if known.amount != amount:
                raise PermanentError(f"paypay: reference {reference} was already used for another amount")
            return known.checkout
        details = self._payment_details(reference)
        if _amount_of(details) != amount:
            raise PermanentError(f"paypay: reference {reference} was already used for another amount")
        if STATUS_OUTCOMES.get(str(details.get("status"))) is Outcome.SUCCEEDED:
            return Checkout(provider_ref=reference)  # already paid: nothing to show, polling says so
        raise PermanentError(
            f"paypay: a QR code for {reference} exists but its link was not returned to this process "
            "(PayPay gives it only once); start a new attempt with a new reference")

    # -- status -----------------------------------------------------------------------------

    def fetch_status(self, provider_ref: str) -> PaymentStatus:
        """Poll PayPay for the merchantPaymentId; RetryableError means ask again later."""
        return self._status_from(provider_ref, self._payment_details(provider_ref))

    def _payment_details(self, merchant_payment_id: str) -> Mapping[str, Any]:
        reference = _paypay_id(merchant_payment_id, "provider_ref")
        return self.client.request("GET", f"/v2/codes/payments/{reference}").data

    def _status_from(self, reference: str, data: Mapping[str, Any]) -> PaymentStatus:
        raw = str(data.get("status") or "")
        outcome = STATUS_OUTCOMES.get(raw, Outcome.UNKNOWN)
        if raw == "CREATED":
            outcome = self._refine_unpaid(reference)
        if outcome is not Outcome.SUCCEEDED:
            return PaymentStatus(provider_ref=reference, outcome=outcome, raw_status=raw)
        accepted = data.get("acceptedAt")
        paid_at = _from_epoch(accepted) if isinstance(accepted, int) and accepted > 0 else None
        return PaymentStatus(provider_ref=reference, outcome=outcome, amount=_amount_of(data),
                             paid_at=paid_at, raw_status=raw)

    def _refine_unpaid(self, reference: str) -> Outcome:
        # FAQ "Is it possible to execute Get Payment Details for expired payment screen": an
        # expired code still reads CREATED; so does a deleted one. What we saw at creation
        # (this process only) tells them apart from a code the resident may still pay.
        with self._lock:
            known = self._codes.get(reference)
        if known is None:
            return Outcome.PENDING
        if known.deleted:
            return Outcome.CANCELLED
        expires_at = known.checkout.expires_at
        if expires_at is not None and self._now() > expires_at + EXPIRY_GRACE:
            return Outcome.EXPIRED
        return Outcome.PENDING

    # -- cancel -----------------------------------------------------------------------------

    def cancel(self, provider_ref: str) -> None:
        """Make an unpaid checkout unpayable; PermanentError if it is already paid (refund it).

        With the codeId from creation: `DELETE /v2/codes/{codeId}` ("Delete a Code", SDK guide:
        for a cancelled order, and so a code scanned but not yet paid cannot complete later).
        Without it (another process created the code): `DELETE /v2/payments/{merchantPaymentId}`
        ("Cancel a payment"; FAQ "Behavior when Cancel a payment API is executed before
        payment": a later payment is cancelled at once and ends FAILED).
        """
        reference = _paypay_id(provider_ref, "provider_ref")
        with self._lock:
            known = self._codes.get(reference)
        if known is not None and known.deleted:
            return
        if known is None:
            self._cancel_by_payment(reference)
            return
        try:
            self.client.request("DELETE", f"/v2/codes/{known.code_id}")
        except PayPayPermanentError as exc:
            if exc.code == "DYNAMIC_QR_ALREADY_PAID":
                raise PermanentError(f"paypay: {reference} is already paid; refund it instead") from exc
            if exc.code != "DYNAMIC_QR_NOT_FOUND":  # already deleted: cancelling is idempotent
                raise
        with self._lock:
            self._codes[reference] = replace(known, deleted=True)

    def _cancel_by_payment(self, reference: str) -> None:
        status = self.fetch_status(reference)
        if status.outcome is Outcome.SUCCEEDED:
            raise PermanentError(f"paypay: {reference} is already paid; refund it instead")
        if status.outcome in (Outcome.FAILED, Outcome.CANCELLED, Outcome.EXPIRED):
            return
        # OPA doc, Cancel a payment: 202 REQUEST_ACCEPTED, asynchronous.
        self.client.request("DELETE", f"/v2/payments/{reference}")

    # -- refund -----------------------------------------------------------------------------

    def settlement_report(self, day: date) -> list[SettledPayment]:
        """Not declared (no SETTLEMENT_REPORT): PayPay's settlement data is read by reconciliation later."""
        raise PermanentError(f"{self.name} does not report settlements through this adapter")

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund all or part of a paid checkout through `POST /v2/refunds`.

        The merchantRefundId is derived from request.idempotency_key; PayPay returns the
        previous result for a repeated one (OPA doc, MerchantRefundId), and a refund already
        listed on the payment is answered without a second POST. A PENDING result becomes
        SUCCEEDED when PayPay finishes (call again with the same key to learn it).
        """
        _check_amount(request.amount)
        refund_id = refund_id_for(request.idempotency_key)
        details = self._payment_details(request.provider_ref)
        if str(details.get("status")) not in ("COMPLETED", "REFUNDED"):
            raise PermanentError(f"paypay: {request.provider_ref} is not a completed payment")
        payment_id = details.get("paymentId")
        if not isinstance(payment_id, str) or not payment_id:
            raise PermanentError(f"paypay: no paymentId for {request.provider_ref}")
        refunds = _refunds_of(details)
        for existing in refunds:
            if existing.get("merchantRefundId") == refund_id:
                return _refund_result(existing, refund_id, request.amount)
        refunded = sum(_amount_of(r) for r in refunds if r.get("status") != "FAILED")
        if request.amount > _amount_of(details) - refunded:
            raise PermanentError(f"paypay: refund of {request.amount} yen exceeds what remains refundable")
        payload = {
            "merchantRefundId": refund_id,
            "paymentId": payment_id,
            "amount": {"amount": request.amount, "currency": "JPY"},
            "requestedAt": self._epoch(),
            "reason": request.reason[:_DESCRIPTION_MAX],
        }
        try:
            response = self.client.request("POST", "/v2/refunds", payload)
        except PayPayRetryableError as exc:
            # SDK README, Error Handling: TRANSACTION_FAILED "means the transaction is failed".
            if exc.code == "TRANSACTION_FAILED":
                return RefundResult(refund_ref=refund_id, outcome=Outcome.FAILED, amount=request.amount)
            raise
        return _refund_result(response.data, refund_id, request.amount)

    # -- notifications ----------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """Check our shared token in constant time, then read the notification as a hint.

        PayPay does not sign notifications, so the URL registered with PayPay carries our
        secret and the gateway (or proxy) hands it over as the X-Kokin-Webhook-Token header.
        The result always has outcome None: poll fetch_status before acting. The event's own
        time (paid_at for COMPLETED, authorized_at for AUTHORIZED, else createdAt) more than
        300 s from `now` raises SignatureError as the protocol asks; PayPay does not sign it,
        so this only turns away late replays, and nothing protects the body's integrity
        beyond TLS: that is why the body is never trusted for an outcome.
        """
        presented = header_value(headers, WEBHOOK_TOKEN_HEADER)
        if presented is None:
            raise SignatureError("paypay: notification without the webhook token")
        if not hmac.compare_digest(presented.encode("utf-8"), self._webhook_token):
            raise SignatureError("paypay: notification with a wrong webhook token")
        payload = load_json(body, "paypay")
        if not isinstance(payload, dict):
            raise PermanentError("paypay: notification body is not a JSON object")
        reference = payload.get("merchant_order_id") or payload.get("merchantPaymentId")
        reference = reference if isinstance(reference, str) and reference else None
        kind = str(payload.get("notification_type") or "notification")
        state = payload.get("state") or payload.get("status")
        notification_id = payload.get("notification_id")
        occurred_at = _parse_time(payload.get(_EVENT_TIME.get(str(state), "createdAt")))
        if occurred_at is not None and abs(now - occurred_at) > MAX_NOTIFICATION_SKEW:
            raise SignatureError("paypay: notification time is more than 300 s from now")
        return WebhookEvent(
            event_id=str(notification_id) if notification_id else "sha256:" + hashlib.sha256(body).hexdigest(),
            type=f"{kind}.{state}" if state else kind,
            reference=reference,
            provider_ref=reference,
            outcome=None,
            occurred_at=occurred_at,
        )

    def _epoch(self) -> int:
        return int(self._now().timestamp())


def refund_id_for(idempotency_key: str) -> str:
    """Return the merchantRefundId for a key: the key itself when PayPay allows it, else a digest."""
    if _PAYPAY_ID.fullmatch(idempotency_key):
        return idempotency_key
    return "k" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:63]


def _paypay_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _PAYPAY_ID.fullmatch(value):
        raise PermanentError(f"paypay: {what} must be 1-64 characters of A-Z a-z 0-9 - _")
    return value


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise PermanentError("paypay: amount must be a positive integer number of yen")


def _code_from(data: Mapping[str, Any], reference: str, amount: int, now: datetime) -> _Code:
    link = data.get("url") or data.get("deeplink")
    code_id = data.get("codeId")
    if not isinstance(link, str) or not link or not isinstance(code_id, str) or not code_id:
        raise PermanentError("paypay: created code has no url or codeId")
    if data.get("merchantPaymentId", reference) != reference or _amount_of(data) != amount:
        raise PermanentError("paypay: created code does not match the request")
    expiry = data.get("expiryDate")
    expires_at = _from_epoch(expiry) if isinstance(expiry, int) and expiry > 0 else None
    forget_after = max(expires_at or now, now) + _REMEMBER_AFTER_EXPIRY
    return _Code(Checkout(provider_ref=reference, qr_payload=link, expires_at=expires_at), code_id, amount,
                 forget_after)


def _amount_of(data: Mapping[str, Any]) -> int:
    money = data.get("amount")
    if isinstance(money, dict) and money.get("currency", "JPY") == "JPY":
        value = money.get("amount")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise PermanentError("paypay: response without an integer JPY amount")


def _refunds_of(details: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    refunds = details.get("refunds")
    items = refunds.get("data") if isinstance(refunds, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _refund_result(data: Mapping[str, Any], refund_id: str, requested: int) -> RefundResult:
    outcome = REFUND_OUTCOMES.get(str(data.get("status") or ""), Outcome.PENDING)
    amount = _amount_of(data) if isinstance(data.get("amount"), dict) else requested
    return RefundResult(refund_ref=refund_id, outcome=outcome, amount=amount)


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


