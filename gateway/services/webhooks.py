"""Provider notifications: verify the raw bytes, ask the provider for the truth, apply once."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.base import Capability, PaymentAdapter, PaymentStatus, RetryableError, SignatureError, WebhookEvent
from gateway.db import transaction
from gateway.errors import InvalidSignature
from gateway.models import PaymentAttempt, WebhookDelivery
from gateway.services.outcomes import Delivery, record_delivery, settle_notification
from gateway.services.payments import ProviderUnavailable


def receive_webhook(session: Session, adapter: PaymentAdapter, headers: dict[str, str], body: bytes,
                    now: datetime) -> Literal["applied", "unchanged", "duplicate", "ignored"]:
    """Handle one notification; safe to receive twice and in any order.

    The signature is checked before anything is parsed. A signed outcome is applied as it
    is; any other notification is a hint, and the provider is asked for the attempt's
    current state (outside any transaction, after a read that answers redeliveries without
    asking). The dedupe row is written in the same transaction as the state change, so a
    redelivery changes nothing and out-of-order deliveries reach the same final state.
    """
    try:
        event = adapter.verify_webhook(headers, body, now)
    except SignatureError as exc:
        raise InvalidSignature(f"the {adapter.name} notification does not verify: {exc}") from exc
    provider_ref = event.provider_ref
    if provider_ref is None or not _trusts(adapter, event):  # the provider will be asked: look first
        if _seen(session, adapter.name, event.event_id):  # redeliveries cost one read, no provider call
            session.rollback()
            return "duplicate"
        provider_ref = provider_ref or _provider_ref(session, adapter.name, event.reference)
        session.rollback()  # end the read before calling the provider
    status = None if provider_ref is None else _current_status(adapter, provider_ref, event)
    delivery = Delivery(event.event_id, event.type)
    if status is None:
        with transaction(session):
            return "ignored" if record_delivery(session, adapter.name, delivery) else "duplicate"
    settled = settle_notification(session, adapter.name, status, delivery, actor=f"webhook:{adapter.name}")
    if settled is None:
        return "duplicate"
    return "applied" if settled[1] else "unchanged"


def _provider_ref(session: Session, adapter_name: str, reference: str | None) -> str | None:
    if reference is None:
        return None
    return session.scalar(select(PaymentAttempt.provider_ref).where(PaymentAttempt.adapter == adapter_name,
                                                                    PaymentAttempt.reference == reference))


def _seen(session: Session, adapter_name: str, event_id: str) -> bool:
    return session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.adapter == adapter_name,
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
