"""Stripe Checkout as a PaymentAdapter: hosted card page, polling, webhooks, cancel, refunds.

Card data never reaches us (Japan's 非保持化; PCI DSS SAQ A): the resident pays on Stripe's
hosted page and we keep only ids, the card brand and its last four digits. Our
`provider_ref` is the Checkout Session id (`cs_...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from adapters.base import (
    Capability,
    Checkout,
    CheckoutRequest,
    Outcome,
    PaymentStatus,
    PermanentError,
    RefundRequest,
    RefundResult,
    SettledPayment,
    WebhookEvent,
    load_json,
)
from adapters.stripe.client import StripeApi
from adapters.stripe.signature import verify_signature
from adapters.stripe.simulator import StripeSimulator
from domain.calendar import TOKYO as _TOKYO

# Session-level events decide an outcome on their own. A `payment_intent.payment_failed`
# does not: on Checkout a declined card leaves the session open and the resident may try
# another card on the same page, so it is only a hint to poll.
_EVENT_OUTCOMES = {
    "checkout.session.async_payment_succeeded": Outcome.SUCCEEDED,
    "checkout.session.async_payment_failed": Outcome.FAILED,
    "checkout.session.expired": Outcome.EXPIRED,
}
_REFUND_OUTCOMES = {
    "succeeded": Outcome.SUCCEEDED,
    "pending": Outcome.PENDING,
    "requires_action": Outcome.PENDING,
    "failed": Outcome.FAILED,
    "canceled": Outcome.FAILED,
}




class StripeAdapter:
    """Stripe Checkout (mode=payment, card only, JPY) behind the payment-adapter protocol."""

    name = "stripe"
    capabilities = (
        Capability.HOSTED_PAGE
        | Capability.POLL
        | Capability.WEBHOOK
        | Capability.SIGNED_WEBHOOK
        | Capability.CANCEL
        | Capability.REFUND
        | Capability.PARTIAL_REFUND
        | Capability.SETTLEMENT_REPORT
    )

    def __init__(self, api: StripeApi, webhook_secret: str, *, simulator: StripeSimulator | None = None) -> None:
        self._api = api
        self._webhook_secret = webhook_secret
        self.simulator = simulator  # set in sandbox mode: tests and the demo play the resident with it

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Open a Checkout Session for the request; the same idempotency key returns the same session.

        No `expires_at` is sent, so a repeated call sends identical parameters (Stripe
        refuses a reused key with different ones) and the session lives Stripe's default
        24 hours; `cancel` closes it earlier. Raises RetryableError when Stripe is unreachable.
        """
        session = self._api.create_checkout_session(
            reference=request.reference,
            amount=request.amount,
            description=request.description,
            success_url=request.return_url,
            cancel_url=request.cancel_url,
            idempotency_key=request.idempotency_key,
        )
        _check_currency(session)
        return Checkout(
            provider_ref=session["id"],
            redirect_url=session.get("url"),
            expires_at=_time(session.get("expires_at")),
        )

    def fetch_status(self, provider_ref: str) -> PaymentStatus:
        """Read the session (and its charge) from Stripe and say what became of the payment."""
        session = self._api.retrieve_checkout_session(_session_id(provider_ref))
        _check_currency(session)
        outcome = session_outcome(session)
        charge = _latest_charge(session)
        card = ((charge or {}).get("payment_method_details") or {}).get("card") or {}
        succeeded = outcome is Outcome.SUCCEEDED
        return PaymentStatus(
            provider_ref=session["id"],
            outcome=outcome,
            amount=session.get("amount_total") if succeeded else None,
            paid_at=_time((charge or {}).get("created")) if succeeded else None,
            card_brand=card.get("brand"),
            card_last4=card.get("last4"),
            raw_status=f"{session.get('status')}/{session.get('payment_status')}",
        )

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, now: datetime) -> WebhookEvent:
        """Verify the Stripe-Signature over the raw bytes, then parse the event.

        SignatureError for a missing or bad signature, another secret, or a timestamp more
        than 300 s from `now`; PermanentError for a signed body that is not a Stripe event.
        Deliveries come at least once and in any order: dedupe on event_id.
        """
        verify_signature(headers, body, self._webhook_secret, now)
        return parse_event(body)

    def cancel(self, provider_ref: str) -> None:
        """Expire an open session so it can no longer be paid; an already expired one is fine.

        PermanentError when the session is complete: refund the payment instead.
        """
        session_id = _session_id(provider_ref)
        try:
            self._api.expire_checkout_session(session_id)
        except PermanentError:
            status = self._api.retrieve_checkout_session(session_id).get("status")
            if status == "expired":
                return
            raise

    def settlement_report(self, day: date) -> list[SettledPayment]:
        """The card payments Stripe took on `day` (Asia/Tokyo) from its balance transactions.

        Each carries the gross amount and the fee Stripe keeps out of the payout; the
        reference is our attempt's, from the charge's metadata (set through the Checkout
        Session's payment_intent_data.metadata).
        """
        start = datetime.combine(day, time(0), tzinfo=_TOKYO)
        low, high = int(start.timestamp()), int((start + timedelta(days=1)).timestamp())
        settled: list[SettledPayment] = []
        after: str | None = None
        while True:
            page = self._api.list_charge_transactions(low, high, after)
            for txn in page.get("data") or []:
                source = txn.get("source")
                charge = source if isinstance(source, Mapping) else {"id": source, "metadata": {}}
                reference = (charge.get("metadata") or {}).get("reference")
                settled.append(SettledPayment(
                    provider_payment_id=str(charge.get("id")), reference=reference,
                    amount=int(txn["amount"]), payment_type="card", fee=int(txn.get("fee") or 0),
                    settled_at=datetime.fromtimestamp(int(txn["created"]), UTC)))
                after = str(txn["id"])
            if not page.get("has_more"):
                return settled

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund `request.amount` yen of the session's payment; idempotent on the request's key.

        PermanentError when the session has no payment or the amount exceeds what remains.
        With `request.refund_ref` (an earlier call left it pending) the refund is looked up:
        Stripe replays an idempotent request's first answer, not the refund's current state.
        """
        if request.refund_ref is not None:
            found = self._api.retrieve_refund(request.refund_ref)
            return RefundResult(refund_ref=found["id"], amount=found["amount"],
                                outcome=_REFUND_OUTCOMES.get(found.get("status", ""), Outcome.PENDING))
        session = self._api.retrieve_checkout_session(_session_id(request.provider_ref))
        intent = session.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, Mapping) else intent
        if session.get("payment_status") != "paid" or not intent_id:
            raise PermanentError(f"checkout session {session['id']} has no completed payment to refund")
        refund = self._api.create_refund(
            payment_intent=intent_id,
            amount=request.amount,
            metadata={"reference": session.get("client_reference_id") or "", "reason": request.reason[:500]},
            idempotency_key=request.idempotency_key,
        )
        return RefundResult(
            refund_ref=refund["id"],
            outcome=_REFUND_OUTCOMES.get(refund.get("status", ""), Outcome.PENDING),
            amount=refund["amount"],
        )


def session_outcome(session: Mapping[str, Any]) -> Outcome:
    """Map a Checkout Session's status and payment_status to our outcome."""
    status, payment_status = session.get("status"), session.get("payment_status")
    if status == "open":
        return Outcome.PENDING  # also after a decline: the resident may try again on the page
    if status == "expired":
        return Outcome.EXPIRED  # by time or by `cancel`: Stripe does not tell them apart
    if status == "complete":
        if payment_status == "paid":
            return Outcome.SUCCEEDED
        intent = session.get("payment_intent")
        intent_status = intent.get("status") if isinstance(intent, Mapping) else None
        if intent_status in ("requires_payment_method", "canceled"):
            return Outcome.FAILED  # a delayed payment method finally failed
        return Outcome.PENDING  # a delayed payment method is still settling
    return Outcome.UNKNOWN


def parse_event(body: bytes) -> WebhookEvent:
    """Translate a verified Stripe event body into a WebhookEvent; outcome None means poll."""
    event = load_json(body, "stripe")
    try:
        kind, event_id, obj = event["type"], event["id"], event["data"]["object"]
    except (KeyError, TypeError) as exc:
        raise PermanentError("signed webhook body is not a Stripe event") from exc
    if not (isinstance(kind, str) and isinstance(event_id, str) and isinstance(obj, dict)):
        raise PermanentError("signed webhook body is not a Stripe event")
    is_session = obj.get("object") == "checkout.session"
    outcome = _EVENT_OUTCOMES.get(kind) if is_session else None
    if is_session and kind == "checkout.session.completed" and obj.get("payment_status") == "paid":
        outcome = Outcome.SUCCEEDED
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    return WebhookEvent(
        event_id=event_id,
        type=kind,
        reference=(obj.get("client_reference_id") if is_session else None) or metadata.get("reference") or None,
        provider_ref=obj.get("id") if is_session else None,
        outcome=outcome,
        occurred_at=_time(event.get("created")),
    )


def _session_id(provider_ref: str) -> str:
    # Anything else would change the URL the SDK builds (an empty id lists all sessions).
    bare = provider_ref.replace("_", "")
    if not provider_ref.startswith("cs_") or not (bare.isascii() and bare.isalnum()):
        raise PermanentError(f"{provider_ref!r} is not a Stripe Checkout Session id")
    return provider_ref


def _check_currency(session: Mapping[str, Any]) -> None:
    if session.get("currency") != "jpy":
        raise PermanentError(f"checkout session {session.get('id')} is in {session.get('currency')!r}, not jpy")


def _latest_charge(session: Mapping[str, Any]) -> Mapping[str, Any] | None:
    intent = session.get("payment_intent")
    charge = intent.get("latest_charge") if isinstance(intent, Mapping) else None
    return charge if isinstance(charge, Mapping) else None


def _time(unix_seconds: Any) -> datetime | None:
    if not isinstance(unix_seconds, int) or isinstance(unix_seconds, bool):
        return None
    try:
        return datetime.fromtimestamp(unix_seconds, UTC)
    except (OverflowError, OSError, ValueError):  # signed, yet no time a datetime can hold
        return None
