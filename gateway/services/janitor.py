"""Settle attempts left pending or with an unknown outcome by asking their provider."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.base import AdapterError, Capability, Outcome, PaymentAdapter, PaymentStatus
from gateway.db import utcnow
from gateway.models import PaymentAttempt
from gateway.services.outcomes import settle_attempt
from gateway.services.payments import transition_attempt
from gateway.services.reference import ward_ids

OPEN_STATES = ("created", "pending", "unknown")
EXPIRY_GRACE = timedelta(minutes=10)  # providers settle a last-second payment within this


def settle_stale_attempts(session: Session, adapters: Mapping[str, PaymentAdapter], *,
                          older_than: timedelta = timedelta(minutes=5), now: datetime | None = None,
                          limit: int = 500) -> Counter[str]:
    """Ask the provider about every open attempt untouched for `older_than`; return counts by result.

    Idempotent: what the provider says is applied through the same path as a webhook. An
    attempt still pending past its expiry (plus a grace period) is cancelled and expired;
    a success reported later still wins.
    """
    now = now or utcnow()
    stale = [row for ward in ward_ids(session)  # ward by ward: each ward's attempts are its node's (docs/scaling.md)
             for row in session.execute(select(PaymentAttempt.municipality_id, PaymentAttempt.id,
                                               PaymentAttempt.adapter, PaymentAttempt.provider_ref,
                                               PaymentAttempt.status, PaymentAttempt.expires_at)
                                        .where(PaymentAttempt.municipality_id == ward,
                                               PaymentAttempt.status.in_(OPEN_STATES),
                                               PaymentAttempt.updated_at < now - older_than)
                                        .order_by(PaymentAttempt.id).limit(limit))]
    session.rollback()  # no transaction stays open while providers are asked
    results: Counter[str] = Counter()
    for ward, attempt_id, adapter_name, provider_ref, status, expires_at in stale:
        adapter = adapters.get(adapter_name)
        if adapter is None:
            results["adapter not configured"] += 1
            continue
        if provider_ref is None:  # the provider was never reached, or its answer was lost
            transition_attempt(session, ward, attempt_id, "lose_track" if status == "created" else "fail",
                               {"janitor": "no provider reference"})
            results["closed without provider reference"] += 1
            continue
        results[_settle_one(session, adapter, ward, provider_ref, expires_at, now)] += 1
    return results


def _settle_one(session: Session, adapter: PaymentAdapter, ward: int, provider_ref: str,
                expires_at: datetime | None, now: datetime) -> str:
    try:
        status = adapter.fetch_status(provider_ref)
    except AdapterError as exc:
        return f"provider error ({'retry later' if exc.retryable else 'permanent'})"
    if status.outcome is Outcome.PENDING and expires_at is not None and now > expires_at + EXPIRY_GRACE:
        if adapter.capabilities & Capability.CANCEL:
            try:
                adapter.cancel(provider_ref)
            except AdapterError:
                return "expired, cancel failed (retry later)"
        status = PaymentStatus(provider_ref, Outcome.EXPIRED, raw_status="expired (janitor)")
    settle_attempt(session, adapter.name, status, actor="janitor", municipality_id=ward)
    return status.outcome.value
