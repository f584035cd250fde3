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

from sqlalchemy import Connection, Row, bindparam, exists, insert, select, update
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
from gateway.models import Assessment, Payment, PaymentAttempt, Refund, Sale, Slip, table
from gateway.services.events import record_event, record_events

ONLINE_CHANNELS = ("card", "paypay")
OUTCOME_EVENTS = {Outcome.SUCCEEDED: "succeed", Outcome.FAILED: "fail", Outcome.EXPIRED: "expire",
                  Outcome.CANCELLED: "cancel", Outcome.UNKNOWN: "lose_track", Outcome.PENDING: "open"}

# The settlement statements, built once (the webhook hot path).
_attempts, _payments, _assessments, _slips = table(PaymentAttempt), table(Payment), table(Assessment), table(Slip)
_sales = table(Sale)
_refunds = table(Refund)
_SETTLEMENT_COLUMNS = (_attempts.c.id, _attempts.c.status, _payments.c.id.label("payment_id"),
                       _payments.c.status.label("payment_status"), _payments.c.municipality_id, _payments.c.slip_id,
                       _payments.c.assessment_id, _payments.c.amount, _payments.c.fee_amount, _payments.c.sale_id)
_OF_ATTEMPT = (_attempts.c.adapter == bindparam("p_adapter"), _attempts.c.provider_ref == bindparam("p_provider_ref"))
_LOCK_FOR_SETTLEMENT = (
    select(*_SETTLEMENT_COLUMNS)
    .select_from(_attempts.join(_payments, _payments.c.id == _attempts.c.payment_id)
                 .join(_assessments, _assessments.c.id == _payments.c.assessment_id))
    .where(*_OF_ATTEMPT).with_for_update())
# A counter sale's payment has no instalment: the same columns, the sale locked instead.
_LOCK_SALE_FOR_SETTLEMENT = (
    select(*_SETTLEMENT_COLUMNS)
    .select_from(_attempts.join(_payments, _payments.c.id == _attempts.c.payment_id)
                 .join(_sales, _sales.c.id == _payments.c.sale_id))
    .where(*_OF_ATTEMPT).with_for_update())
_SALE_OUTCOMES = {"succeeded": "paid", "cancelled": "cancelled", "expired": "timed_out", "failed": "failed"}
_SETTLE_ATTEMPT = (update(_attempts).where(_attempts.c.id == bindparam("p_attempt_id"))
                   .values(status=bindparam("p_status"), card_brand=bindparam("p_card_brand"),
                           card_last4=bindparam("p_card_last4"), updated_at=bindparam("p_updated_at")))
_other = _payments.alias("other")
_BOOKED = exists().where(_other.c.assessment_id == bindparam("p_assessment_id"), _other.c.applied)
_BOOK_PAYMENT = (update(_payments).where(_payments.c.id == bindparam("p_payment_id"))
                 .values(status=bindparam("p_status"), accepted_at=bindparam("p_accepted_at"),
                         updated_at=bindparam("p_updated_at"), applied=~_BOOKED, overpaid=_BOOKED)
                 .returning(_payments.c.applied))
_MARK_SLIP_PAID = (update(_slips).where(_slips.c.id == bindparam("p_slip_id"), _slips.c.status == "issued")
                   .values(status="paid"))


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
        attempt_id, _ = settle_in_transaction(session, adapter_name, status, actor=actor)
    attempt = session.get(PaymentAttempt, attempt_id, populate_existing=True)  # settled in Core: reload
    assert attempt is not None
    return attempt


def settle_in_transaction(session: Session, adapter_name: str, status: PaymentStatus, *,
                          actor: str) -> tuple[int, bool]:
    """`settle_attempt` inside the caller's transaction: the attempt's id and whether anything changed.

    One statement locks the attempt, its payment and the instalment (SELECT ... FOR UPDATE
    over the join), so settlements of payments of one instalment queue behind each other and
    the next statement sees whether another payment was applied meanwhile. The partial
    unique index on applied payments stays the guarantee; the lock only keeps it from firing.
    This is the webhook hot path: Core statements, no ORM loads.
    """
    conn = session.connection()
    params = {"p_adapter": adapter_name, "p_provider_ref": status.provider_ref}
    row = conn.execute(_LOCK_FOR_SETTLEMENT, params).first() or conn.execute(_LOCK_SALE_FOR_SETTLEMENT, params).first()
    if row is None:
        raise NotFound("no such payment attempt")
    event = OUTCOME_EVENTS[status.outcome]
    if not ATTEMPT.allows(row.status, event):
        return row.id, False  # already there, or an older report arriving late: the state stands
    new_status = ATTEMPT.next(row.status, event)
    now = utcnow()
    conn.execute(_SETTLE_ATTEMPT, {"p_attempt_id": row.id, "p_status": new_status, "p_card_brand": status.card_brand,
                                   "p_card_last4": status.card_last4, "p_updated_at": now})
    events = [dict(kind=f"attempt.{event}", subject_type="payment_attempt", subject_id=str(row.id),
                   municipality_id=row.municipality_id, actor=actor,
                   data={"adapter": adapter_name, "status": new_status, "provider_status": status.raw_status})]
    if row.sale_id is not None:
        events += _settle_sale(conn, row, new_status, status.paid_at or now, now, actor=actor)
    elif new_status == "succeeded":
        events.append(_record_success(conn, row, status.paid_at or now, now, actor=actor))
    record_events(session, events)
    return row.id, True


def _settle_sale(conn: Connection, row: Row[*tuple[Any, ...]], attempt_status: str, accepted_at: datetime,
                 now: datetime, *, actor: str) -> list[dict[str, Any]]:
    """Follow the terminal's outcome on the sale; a success reported late still wins over a time-out."""
    sale_status = _SALE_OUTCOMES.get(attempt_status)
    if sale_status is None:
        return []
    if attempt_status == "succeeded":
        conn.execute(update(_payments).where(_payments.c.id == row.payment_id)
                     .values(status=PAYMENT.next(row.payment_status, "succeed"), accepted_at=accepted_at,
                             updated_at=now, applied=True))
        conn.execute(update(_sales).where(_sales.c.id == row.sale_id).values(status="paid", completed_at=accepted_at))
    else:
        conn.execute(update(_sales).where(_sales.c.id == row.sale_id, _sales.c.status == "waiting")
                     .values(status=sale_status))
    return [dict(kind=f"sale.{sale_status}", subject_type="sale", subject_id=str(row.sale_id),
                 municipality_id=row.municipality_id, actor=actor,
                 data={"payment_id": row.payment_id, "amount": row.amount})]



def _record_success(conn: Connection, row: Row[*tuple[Any, ...]], accepted_at: datetime, now: datetime, *,
                    actor: str) -> dict[str, Any]:
    """Mark the payment succeeded and book it to its instalment, once; keep any second payment.

    Returns the event to record. The caller holds the instalment's row lock.
    """
    if row.payment_status != "open":
        # A payment has one attempt and no cancel path yet, so this cannot happen today. When
        # either arrives, a success here must become an overpayment, never be dropped.
        raise IllegalTransition(f"payment {row.payment_id} is {row.payment_status}; a success cannot be applied",
                                details={"payment_id": row.payment_id})
    applied = conn.execute(_BOOK_PAYMENT, {"p_payment_id": row.payment_id, "p_assessment_id": row.assessment_id,
                                           "p_status": PAYMENT.next(row.payment_status, "succeed"),
                                           "p_accepted_at": accepted_at, "p_updated_at": now}).scalar_one()
    if applied:
        conn.execute(_MARK_SLIP_PAID, {"p_slip_id": row.slip_id})
        return dict(kind="payment.applied", subject_type="payment", subject_id=str(row.payment_id),
                    municipality_id=row.municipality_id, actor=actor,
                    data={"amount": row.amount, "fee": row.fee_amount, "slip_id": row.slip_id})
    refund_id = conn.execute(insert(_refunds).values(
        payment_id=row.payment_id, amount=row.amount, reason="double payment (二重納付)", status="requested",
        requested_by="system", created_at=now, updated_at=now).returning(_refunds.c.id)).scalar_one()
    return dict(kind="payment.double_payment", subject_type="payment", subject_id=str(row.payment_id),
                municipality_id=row.municipality_id, actor=actor,
                data={"amount": row.amount, "refund_id": refund_id})
