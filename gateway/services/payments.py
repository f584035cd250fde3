"""Pay a slip: open an attempt at a provider, settle what the provider reports, apply once.

Never holds a transaction across a provider call: the attempt is written and committed
first, the provider is called, and the outcome is recorded in a second transaction that
locks the attempt (SELECT ... FOR UPDATE).
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.base import (
    CheckoutRequest,
    Outcome,
    PaymentAdapter,
    PaymentStatus,
    PermanentError,
    RetryableError,
)
from gateway.db import transaction, utcnow
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.fees import system_fee
from gateway.lifecycle import ATTEMPT, PAYMENT, IllegalTransition
from gateway.models import Payment, PaymentAttempt, Refund, Slip
from gateway.services.events import record_event

ONLINE_CHANNELS = ("card", "paypay")
OUTCOME_EVENTS = {Outcome.SUCCEEDED: "succeed", Outcome.FAILED: "fail", Outcome.EXPIRED: "expire",
                  Outcome.CANCELLED: "cancel", Outcome.UNKNOWN: "lose_track", Outcome.PENDING: "open"}


class ProviderUnavailable(GatewayError):
    code = "provider_unavailable"
    status = 503


class ProviderRejected(GatewayError):
    code = "provider_rejected"
    status = 502


def adapters_by_channel(adapters: Mapping[str, PaymentAdapter],
                        channels: Mapping[str, str]) -> dict[str, PaymentAdapter]:
    """Map each online channel to the configured adapter that carries it (CHANNEL_ADAPTERS)."""
    return {channel: adapters[name] for channel, name in channels.items() if name in adapters}


@dataclass(frozen=True)
class StartedPayment:
    payment: Payment
    attempt: PaymentAttempt


def start_payment(session: Session, channel_adapters: Mapping[str, PaymentAdapter], *, municipality_id: int,
                  slip_number: str, channel: str, return_url: str, cancel_url: str,
                  fee_schedules: Mapping[str, Any], actor: str) -> StartedPayment:
    """Open a payment of the slip's latest issue through `channel` and a checkout at its provider.

    `channel_adapters` maps each online channel to the adapter that carries it.

    Raises ProviderUnavailable (retry later; the attempt is left `unknown` for the janitor)
    or ProviderRejected (permanent; the attempt failed, another may follow).
    """
    adapter = channel_adapters.get(channel)
    if channel not in ONLINE_CHANNELS or adapter is None:
        raise GatewayError(f"channel {channel!r} is not available online", code="channel_unavailable", status=422)
    with transaction(session):
        slip = _payable_slip(session, municipality_id, slip_number, channel)
        fee = system_fee(slip.amount, fee_schedules.get(channel))
        payment = Payment(municipality_id=municipality_id, slip_id=slip.id, assessment_id=slip.assessment_id,
                          channel=channel, status=PAYMENT.initial, amount=slip.amount, fee_amount=fee)
        session.add(payment)
        session.flush()
        attempt = PaymentAttempt(payment_id=payment.id, adapter=adapter.name, status=ATTEMPT.initial,
                                 reference=f"kk-{uuid.uuid4().hex}", amount=slip.amount + fee)
        session.add(attempt)
        session.flush()
        record_event(session, "payment.opened", "payment", payment.id, municipality_id=municipality_id,
                     data={"slip": slip.number, "channel": channel, "amount": slip.amount, "fee": fee}, actor=actor)
    request = CheckoutRequest(reference=attempt.reference, amount=attempt.amount,
                              description=f"納付書 {slip_number}", return_url=return_url,
                              cancel_url=cancel_url, idempotency_key=attempt.reference)
    try:
        checkout = adapter.create_checkout(request)
    except RetryableError as exc:
        transition_attempt(session, attempt.id, "lose_track", {"error": str(exc)[:200]})
        raise ProviderUnavailable(f"{channel} is not answering; try again shortly") from exc
    except PermanentError as exc:
        transition_attempt(session, attempt.id, "fail", {"error": str(exc)[:200]})
        raise ProviderRejected(f"{channel} refused the payment request") from exc
    transition_attempt(session, attempt.id, "open", {}, provider_ref=checkout.provider_ref,
                        redirect_url=checkout.redirect_url, qr_payload=checkout.qr_payload,
                        expires_at=checkout.expires_at)
    session.refresh(payment)
    session.refresh(attempt)
    return StartedPayment(payment, attempt)


def _payable_slip(session: Session, municipality_id: int, number: str, channel: str) -> Slip:
    slip = session.scalar(select(Slip).where(Slip.municipality_id == municipality_id, Slip.number == number)
                          .order_by(Slip.reissue.desc()).limit(1))
    if slip is None:
        raise NotFound(f"slip {number} does not exist")
    if slip.status != "issued":
        raise Conflict(f"slip {number} is {slip.status}", code=f"slip_{slip.status}")
    if channel not in slip.assessment.fund_type.channels:
        raise GatewayError(f"{slip.assessment.fund_type.name} cannot be paid by {channel}",
                           code="channel_not_accepted", status=422)
    return slip


def transition_attempt(session: Session, attempt_id: int, event: str, data: dict[str, Any],
                       **changes: Any) -> PaymentAttempt:
    """Apply one event to an attempt in its own transaction (the attempt row locked)."""
    with transaction(session):
        attempt = _locked_attempt(session, PaymentAttempt.id == attempt_id)
        _apply_attempt_event(session, attempt, event, data, **changes)
    return attempt


def _locked_attempt(session: Session, condition: Any) -> PaymentAttempt:
    attempt = session.scalar(select(PaymentAttempt).where(condition).with_for_update())
    if attempt is None:
        raise NotFound("no such payment attempt")
    return attempt


def _apply_attempt_event(session: Session, attempt: PaymentAttempt, event: str, data: dict[str, Any],
                         **changes: Any) -> None:
    attempt.status = ATTEMPT.next(attempt.status, event)
    for name, value in changes.items():
        setattr(attempt, name, value)
    attempt.updated_at = utcnow()
    payment = session.get(Payment, attempt.payment_id, with_for_update={"of": Payment}, populate_existing=True)
    assert payment is not None
    record_event(session, f"attempt.{event}", "payment_attempt", attempt.id, municipality_id=payment.municipality_id,
                 data={"adapter": attempt.adapter, "status": attempt.status, **data})


def settle_attempt(session: Session, adapter_name: str, status: PaymentStatus, *, actor: str) -> PaymentAttempt:
    """Record what the provider says of an attempt (webhook, polling, janitor); idempotent.

    The same status twice changes nothing; a success is applied to the instalment once,
    and a second success for the same instalment becomes an overpayment queued for refund.
    """
    with transaction(session):
        attempt, _ = settle_in_transaction(session, adapter_name, status, actor=actor)
    return attempt


def settle_in_transaction(session: Session, adapter_name: str, status: PaymentStatus, *,
                          actor: str) -> tuple[PaymentAttempt, bool]:
    """`settle_attempt` inside the caller's transaction; also say whether anything changed."""
    attempt = _locked_attempt(session, (PaymentAttempt.adapter == adapter_name)
                              & (PaymentAttempt.provider_ref == status.provider_ref))
    event = OUTCOME_EVENTS[status.outcome]
    if not ATTEMPT.allows(attempt.status, event):
        return attempt, False  # already there, or an older report arriving late: the state stands
    _apply_attempt_event(session, attempt, event, {"provider_status": status.raw_status},
                         card_brand=status.card_brand, card_last4=status.card_last4)
    if attempt.status == "succeeded":
        payment = session.get(Payment, attempt.payment_id)
        assert payment is not None
        _record_success(session, payment, status.paid_at or utcnow(), actor=actor)
    return attempt, True


def _record_success(session: Session, payment: Payment, accepted_at: datetime, *, actor: str) -> None:
    """Mark the payment succeeded and book it to its instalment, once; keep any second payment."""
    if payment.status != "open":
        # A payment has one attempt and no cancel path yet, so this cannot happen today. When
        # either arrives, a success here must become an overpayment, never be dropped.
        raise IllegalTransition(f"payment {payment.id} is {payment.status}; a success cannot be applied",
                                details={"payment_id": payment.id})
    payment.status = PAYMENT.next(payment.status, "succeed")
    payment.accepted_at = accepted_at
    payment.updated_at = utcnow()
    session.flush()
    try:
        with session.begin_nested():
            session.execute(update(Payment).where(Payment.id == payment.id).values(applied=True))
            session.execute(update(Slip).where(Slip.id == payment.slip_id, Slip.status == "issued")
                            .values(status="paid"))
    except IntegrityError:
        _record_overpayment(session, payment, actor=actor)
        return
    session.refresh(payment)
    record_event(session, "payment.applied", "payment", payment.id, municipality_id=payment.municipality_id,
                 data={"amount": payment.amount, "fee": payment.fee_amount, "slip_id": payment.slip_id}, actor=actor)


def _record_overpayment(session: Session, payment: Payment, *, actor: str) -> None:
    session.execute(update(Payment).where(Payment.id == payment.id).values(overpaid=True))
    session.refresh(payment)
    refund = Refund(payment_id=payment.id, amount=payment.amount, reason="double payment (二重納付)",
                    status="requested", requested_by="system")
    session.add(refund)
    session.flush()
    record_event(session, "payment.double_payment", "payment", payment.id, municipality_id=payment.municipality_id,
                 data={"amount": payment.amount, "refund_id": refund.id}, actor=actor)
