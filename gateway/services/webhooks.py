"""Provider notifications: verify the raw bytes, ask the provider for the truth, apply once."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.base import (
    Capability,
    PaymentAdapter,
    PaymentStatus,
    PermanentError,
    RetryableError,
    SignatureError,
    WebhookEvent,
)
from domain.inputs import bad_character
from gateway.db import transaction
from gateway.errors import InvalidSignature, MalformedNotification
from gateway.models import PaymentAttempt, WebhookDelivery
from gateway.observability.metrics import observe_webhook
from gateway.services.events import record_event
from gateway.services.outcomes import Delivery, record_delivery, settle_notification
from gateway.services.payments import ProviderUnavailable, ward_of_reference

log = logging.getLogger(__name__)
MAX_EVENT_ID = 255  # webhook_deliveries.event_id
Received = Literal["applied", "unchanged", "duplicate", "ignored", "rejected"]


def receive_webhook(session: Session, adapter: PaymentAdapter, headers: dict[str, str], body: bytes,
                    now: datetime) -> Received:
    """Handle one notification; safe to receive twice and in any order.

    The signature is checked before anything is parsed. A signed outcome is applied as it
    is; any other notification is a hint, and the provider is asked for the attempt's
    current state (outside any transaction, after a read that answers redeliveries without
    asking). The dedupe row is written in the same transaction as the state change, so a
    redelivery changes nothing and out-of-order deliveries reach the same final state.

    Every statement names the notification's ward (docs/scaling.md): the ward our attempt
    reference in it names, or, for a reference made before references named their ward, its
    attempt's (found without it); the dedupe row is recorded in that ward's chain, 0 when the
    notification names no attempt of ours.

    A notification that verifies but cannot be read, or whose attempt the provider refuses
    to describe, is recorded once (audit event webhook.malformed) and then answered as
    `reject_malformed` says: MalformedNotification (400, delivered again) or "rejected".
    Each delivery is counted by adapter and outcome (kokin_webhook_deliveries_total).
    """
    try:
        outcome = _handle(session, adapter, headers, body, now)
    except Exception as exc:
        observe_webhook(adapter.name, _FAILURES.get(type(exc), "error"))
        raise
    observe_webhook(adapter.name, outcome)
    return outcome


_FAILURES: dict[type[Exception], str] = {InvalidSignature: "invalid_signature", MalformedNotification: "rejected",
             ProviderUnavailable: "provider_unavailable"}


def _handle(session: Session, adapter: PaymentAdapter, headers: dict[str, str], body: bytes,
            now: datetime) -> Received:
    try:
        event = adapter.verify_webhook(headers, body, now)
    except SignatureError as exc:
        raise InvalidSignature(f"the {adapter.name} notification does not verify: {exc}") from exc
    except PermanentError as exc:
        return reject_malformed(session, adapter, body, str(exc))
    problem = _unfit(event)
    if problem is not None:
        return reject_malformed(session, adapter, body, problem)
    try:
        return _receive(session, adapter, event)
    except PermanentError as exc:  # the provider would not describe the attempt the notification names
        session.rollback()
        return reject_malformed(session, adapter, body, f"{adapter.name} refused to describe the attempt: {exc}")


def reject_malformed(session: Session, adapter: PaymentAdapter, body: bytes, reason: str) -> Literal["rejected"]:
    """Record a verified notification that cannot be applied, once per body; answer as its provider needs.

    Providers whose signed notifications carry outcomes (SIGNED_WEBHOOK: Stripe, Square)
    deliver again on any status but 2xx, Stripe for up to 3 days (domain/providers.md):
    MalformedNotification (400) keeps the delivery alive, so a corrected gateway still
    applies it. A notification that is only a hint to poll (PayPay) is acknowledged
    ("rejected"): polling and the janitor settle its attempt, and nothing would ever read it.
    """
    digest = hashlib.sha256(body).hexdigest()
    shown = reason.encode("ascii", "backslashreplace").decode("ascii")[:300]  # never a NUL into the record
    with transaction(session):
        if record_delivery(session, adapter.name, Delivery(f"malformed:sha256:{digest}", "malformed"), chain=0):
            record_event(session, "webhook.malformed", "webhook", f"{adapter.name}:{digest[:16]}",
                         municipality_id=None, actor=f"webhook:{adapter.name}",
                         data={"adapter": adapter.name, "reason": shown, "sha256": digest, "bytes": len(body)})
    log.warning("a verified %s notification cannot be applied (%s); recorded as webhook.malformed %s",
                adapter.name, shown, digest[:16])
    if adapter.capabilities & Capability.SIGNED_WEBHOOK:
        raise MalformedNotification(f"the {adapter.name} notification verifies but cannot be applied: {shown}",
                                    details={"adapter": adapter.name, "sha256": digest})
    return "rejected"


def _unfit(event: WebhookEvent) -> str | None:
    """Why a parsed event cannot be stored or looked up (a NUL, an id too long), or None."""
    if not isinstance(event.event_id, str) or not 0 < len(event.event_id) <= MAX_EVENT_ID:
        return f"the event id is not a string of 1 to {MAX_EVENT_ID} characters"
    for name in ("event_id", "type", "reference", "provider_ref"):
        value = getattr(event, name)
        if value is not None and not isinstance(value, str):
            return f"{name} is not a string"
        problem = None if value is None else bad_character(value)
        if problem is not None:
            return f"{name} contains {problem}"
    return None


def _receive(session: Session, adapter: PaymentAdapter, event: WebhookEvent) -> Received:
    delivery, actor = Delivery(event.event_id, event.type), f"webhook:{adapter.name}"
    if event.provider_ref is not None and _trusts(adapter, event):  # applied as it says: no read, no provider call
        status = _current_status(adapter, event.provider_ref, event)
        assert status is not None
        # The ward our reference names is read in the settlement's transaction (its first round trip).
        settled = settle_notification(session, adapter.name, status, delivery, actor=actor, reference=event.reference)
    else:  # the provider will be asked: look first
        with transaction(session):  # reads only, ended before the provider is asked
            ward, provider_ref = _route(session, adapter.name, event)
            seen = _seen(session, adapter.name, event.event_id, ward or 0)  # a redelivery: no provider call
        if seen:
            return "duplicate"
        status = None if provider_ref is None else _current_status(adapter, provider_ref, event)
        if status is None:
            with transaction(session):
                return "ignored" if record_delivery(session, adapter.name, delivery, chain=ward or 0) else "duplicate"
        settled = settle_notification(session, adapter.name, status, delivery, actor=actor, municipality_id=ward)
    if settled is None:
        return "duplicate"
    return "applied" if settled[1] else "unchanged"


def _route(session: Session, adapter_name: str, event: WebhookEvent) -> tuple[int | None, str | None]:
    """(ward, provider reference) of the attempt a notification names; ward None when it names none of ours."""
    ward = ward_of_reference(session, event.reference)  # our reference names its ward: no lookup of the attempt
    if ward is None:  # a reference made before references named their ward, or none
        return _attempt_without_ward(session, adapter_name, event.provider_ref, event.reference)
    return ward, event.provider_ref or _provider_ref(session, adapter_name, event.reference, ward)


def _provider_ref(session: Session, adapter_name: str, reference: str | None, ward: int) -> str | None:
    """The provider's reference of the ward's attempt with our `reference`."""
    if reference is None:
        return None
    return session.scalar(select(PaymentAttempt.provider_ref).where(PaymentAttempt.municipality_id == ward,
                                                                    PaymentAttempt.adapter == adapter_name,
                                                                    PaymentAttempt.reference == reference))


def _attempt_without_ward(session: Session, adapter_name: str, provider_ref: str | None,
                          reference: str | None) -> tuple[int | None, str | None]:
    """(ward, provider reference) of the attempt a notification names by a token alone; (None, provider_ref) if none.

    The one lookup of a notification that names no ward: on Citus it asks every node. Only
    references made before they named their ward come here (docs/scaling.md).
    """
    if provider_ref is not None:
        by_token = PaymentAttempt.provider_ref == provider_ref
    elif reference is not None:
        by_token = PaymentAttempt.reference == reference
    else:
        return None, None
    found = session.execute(select(PaymentAttempt.municipality_id, PaymentAttempt.provider_ref)
                            .where(PaymentAttempt.adapter == adapter_name, by_token)).first()
    return (None, provider_ref) if found is None else (found.municipality_id, found.provider_ref)


def _seen(session: Session, adapter_name: str, event_id: str, chain: int) -> bool:
    return session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.chain == chain,
                                                           WebhookDelivery.adapter == adapter_name,
                                                           WebhookDelivery.event_id == event_id)) is not None


def _trusts(adapter: PaymentAdapter, event: WebhookEvent) -> bool:
    """A notification's outcome is believed when it is signed, or when there is no one to ask."""
    return event.outcome is not None and bool(adapter.capabilities & Capability.SIGNED_WEBHOOK
                                              or not adapter.capabilities & Capability.POLL)


def _current_status(adapter: PaymentAdapter, provider_ref: str, event: WebhookEvent) -> PaymentStatus | None:
    """Trust what a trusted notification says; otherwise ask the provider (the hint's truth)."""
    if _trusts(adapter, event):
        assert event.outcome is not None
        return PaymentStatus(provider_ref, event.outcome, paid_at=event.occurred_at, raw_status=event.type)
    if not adapter.capabilities & Capability.POLL:
        return None
    try:
        return adapter.fetch_status(provider_ref)
    except RetryableError as exc:  # the provider retries the delivery; nothing is recorded yet
        raise ProviderUnavailable(f"{adapter.name} is not answering; deliver again later") from exc
