"""Pay a slip: open an attempt at a provider, settle what the provider reports, apply once.

Never holds a transaction across a provider call: the attempt is written and committed
first, the provider is called, and the outcome is recorded in a second transaction that
locks the attempt (SELECT ... FOR UPDATE).
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import NotImplementedType
from typing import Any

from sqlalchemy import Engine, bindparam, exists, insert, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.orm import Session

from adapters.base import (
    CheckoutRequest,
    Outcome,
    PaymentAdapter,
    PaymentStatus,
    PermanentError,
    RetryableError,
)
from domain.lifecycle import ATTEMPT, PAYMENT, IllegalTransition
from gateway.db import Statements, call_in_autocommit, transaction, utcnow
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.fees import system_fee
from gateway.models import Assessment, Event, Payment, PaymentAttempt, Refund, Sale, Slip, WebhookDelivery, table
from gateway.services.events import record_event

ONLINE_CHANNELS = ("card", "paypay")
_REFUND_REASON = "double payment (二重納付)"  # of the refund queued for a double payment
OUTCOME_EVENTS = {Outcome.SUCCEEDED: "succeed", Outcome.FAILED: "fail", Outcome.EXPIRED: "expire",
                  Outcome.CANCELLED: "cancel", Outcome.UNKNOWN: "lose_track", Outcome.PENDING: "open"}

# The settlement statements, built once (the webhook hot path; see `Statements`).
_attempts, _payments, _assessments, _slips = table(PaymentAttempt), table(Payment), table(Assessment), table(Slip)
_sales, _refunds, _events, _deliveries = table(Sale), table(Refund), table(Event), table(WebhookDelivery)
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
# A notification is recorded once per (adapter, event id), in the transaction of the change.
_DELIVERY_VALUES: dict[str, Any] = dict(adapter=bindparam("p_adapter"), event_id=bindparam("p_event_id"),
                        event_type=bindparam("p_event_type"), received_at=bindparam("p_received_at"))
_RECORD_DELIVERY = {name: dialect.insert(_deliveries).values(**_DELIVERY_VALUES).on_conflict_do_nothing()
                    .returning(_deliveries.c.id)
                    for name, dialect in (("postgresql", postgresql_dialect), ("sqlite", sqlite_dialect))}
_SALE_OUTCOMES = {"succeeded": "paid", "cancelled": "cancelled", "expired": "timed_out", "failed": "failed"}
_SETTLE_ATTEMPT = (update(_attempts).where(_attempts.c.id == bindparam("p_attempt_id"))
                   .values(status=bindparam("p_status"), card_brand=bindparam("p_card_brand"),
                           card_last4=bindparam("p_card_last4"), updated_at=bindparam("p_updated_at")))
_other = _payments.alias("other")
_BOOKED = exists().where(_other.c.assessment_id == bindparam("p_assessment_id"), _other.c.applied)
_BOOK_PAYMENT = (update(_payments).where(_payments.c.id == bindparam("p_payment_id"))
                 .values(status=bindparam("p_payment_status"), accepted_at=bindparam("p_accepted_at"),
                         updated_at=bindparam("p_updated_at"), applied=~_BOOKED, overpaid=_BOOKED)
                 .returning(_payments.c.applied))
_APPLIED = exists().where(_other.c.id == bindparam("p_payment_id"), _other.c.applied)  # after _BOOK_PAYMENT
_MARK_SLIP_PAID = (update(_slips).where(_slips.c.id == bindparam("p_slip_id"), _slips.c.status == "issued", _APPLIED)
                   .values(status="paid"))
_EVENT_COLUMNS = ("kind", "subject_type", "subject_id", "municipality_id", "actor", "data", "recorded_at")


def _event_values() -> list[Any]:
    return [bindparam(f"e_{name}", type_=_events.c[name].type) for name in _EVENT_COLUMNS]


_RECORD_EVENT = insert(_events).values(dict(zip(_EVENT_COLUMNS, _event_values(), strict=True)))
_RECORD_EVENT_IF_APPLIED = insert(_events).from_select(list(_EVENT_COLUMNS),
                                                       select(*_event_values()).where(_APPLIED))


_QUEUE_REFUND = (insert(_refunds).values(payment_id=bindparam("p_payment_id"), amount=bindparam("p_amount"),
                                         reason=_REFUND_REASON, status="requested", requested_by="system",
                                         created_at=bindparam("p_updated_at"), updated_at=bindparam("p_updated_at"))
                 .returning(_refunds.c.id))
_SALE_PAYMENT_SUCCEEDED = (update(_payments).where(_payments.c.id == bindparam("p_payment_id"))
                           .values(status=bindparam("p_payment_status"), accepted_at=bindparam("p_accepted_at"),
                                   updated_at=bindparam("p_updated_at"), applied=True))
_SALE_PAID = (update(_sales).where(_sales.c.id == bindparam("p_sale_id"))
              .values(status="paid", completed_at=bindparam("p_accepted_at")))
_SALE_ENDED = (update(_sales).where(_sales.c.id == bindparam("p_sale_id"), _sales.c.status == "waiting")
               .values(status=bindparam("p_sale_status")))


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
    """`settle_attempt` inside the caller's transaction: the attempt's id and whether anything changed."""
    settled = _settle(session, adapter_name, status, actor=actor, delivery=None)
    assert settled is not None  # only a delivery can be a repeat
    return settled


def settle_delivery(session: Session, adapter_name: str, status: PaymentStatus, delivery: Delivery, *,
                    actor: str) -> tuple[int, bool] | None:
    """Record a provider notification and settle what it reports, in the caller's transaction.

    None, with nothing changed, when (adapter, event id) was recorded before.
    """
    return _settle(session, adapter_name, status, actor=actor, delivery=delivery)


def _settle(session: Session, adapter_name: str, status: PaymentStatus, *, actor: str,
            delivery: Delivery | None) -> tuple[int, bool] | None:
    """Settle an attempt: its id and whether anything changed (None for a repeated delivery).

    One statement locks the attempt, its payment and the instalment (SELECT ... FOR UPDATE
    over the join), so settlements of payments of one instalment queue behind each other and
    the writes see whether another payment was applied meanwhile. The partial unique index
    on applied payments stays the guarantee; the lock only keeps it from firing.

    With `delivery`, the notification is recorded first and None is returned, nothing
    changed, when it was recorded before.

    Prebuilt Core statements, no ORM loads, the writes sent together. On PostgreSQL a
    webhook for an instalment payment takes `settle_delivery_in_database` instead: these
    same steps as one function call (migration 0008), kept in step by the suite running
    every settlement test on both databases.
    """
    sql = Statements(session)
    params: dict[str, Any] = {"p_adapter": adapter_name, "p_provider_ref": status.provider_ref}
    if delivery is not None:
        params |= {"p_event_id": delivery.event_id, "p_event_type": delivery.event_type[:100],
                   "p_received_at": utcnow()}
        if sql.first(_RECORD_DELIVERY[session.get_bind().dialect.name], params) is None:
            return None
    row = sql.first(_LOCK_FOR_SETTLEMENT, params) or sql.first(_LOCK_SALE_FOR_SETTLEMENT, params)
    if row is None:
        raise NotFound("no such payment attempt")
    event = OUTCOME_EVENTS[status.outcome]
    if not ATTEMPT.allows(row.status, event):
        return row.id, False  # already there, or an older report arriving late: the state stands
    new_status = ATTEMPT.next(row.status, event)
    now = utcnow()
    accepted_at = status.paid_at or now
    attempt_data = {"adapter": adapter_name, "status": new_status, "provider_status": status.raw_status}
    writes = [(_SETTLE_ATTEMPT, {"p_attempt_id": row.id, "p_status": new_status, "p_card_brand": status.card_brand,
                                 "p_card_last4": status.card_last4, "p_updated_at": now}),
              _event(row, f"attempt.{event}", "payment_attempt", row.id, now, actor, attempt_data)]
    if row.sale_id is not None:
        writes += _sale_writes(row, new_status, accepted_at, now, actor)
    elif new_status == "succeeded":
        if row.payment_status != "open":
            # A payment has one attempt and no cancel path yet, so this cannot happen today. When
            # either arrives, a success here must become an overpayment, never be dropped.
            raise IllegalTransition(f"payment {row.payment_id} is {row.payment_status}; a success cannot be applied",
                                    details={"payment_id": row.payment_id})
        booking = {"p_payment_id": row.payment_id, "p_assessment_id": row.assessment_id, "p_slip_id": row.slip_id,
                   "p_payment_status": PAYMENT.next(row.payment_status, "succeed"), "p_accepted_at": accepted_at,
                   "p_updated_at": now}
        applied_event = _event(row, "payment.applied", "payment", row.payment_id, now, actor,
                               {"amount": row.amount, "fee": row.fee_amount, "slip_id": row.slip_id})[1]
        booked = len(writes)
        writes += [(_BOOK_PAYMENT, booking), (_MARK_SLIP_PAID, booking),
                   (_RECORD_EVENT_IF_APPLIED, {**applied_event, "p_payment_id": row.payment_id})]
        booking_row = sql.batch(writes)[booked]
        assert booking_row is not None
        if not booking_row.applied:
            _queue_double_payment(sql, row, now, actor)
        return row.id, True
    sql.batch(writes)
    return row.id, True


def settle_notification(session: Session, adapter_name: str, status: PaymentStatus, delivery: Delivery, *,
                        actor: str) -> tuple[int, bool] | None:
    """Record a provider notification and settle what it reports, in a transaction of its own.

    The attempt's id and whether anything changed; None, nothing changed, for a repeat. On
    PostgreSQL an instalment payment's notification is one function call (one round trip);
    anything else, and everything on SQLite, is `settle_delivery` in a session transaction.
    """
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        # The call runs on a connection of its own: end the session's transaction first, as
        # `transaction` below would commit it, so the call never waits on this session's locks.
        if session.in_transaction():
            session.commit()
        settled = settle_delivery_in_database(bind, adapter_name, status, delivery, actor=actor)
        if settled is not NotImplemented:
            return settled
    with transaction(session):
        return settle_delivery(session, adapter_name, status, delivery, actor=actor)


# PostgreSQL: `_settle` of a delivery, for an instalment payment, as one function call (migration 0008).
_SETTLE_DELIVERY_CALL = (
    "SELECT outcome, attempt_id, double_payment FROM kokin_settle_delivery("
    "%(adapter)s, %(event_id)s, %(event_type)s, %(now)s, %(provider_ref)s, %(event)s, %(moves)s::jsonb, "
    "%(payment_from)s, %(payment_to)s, %(card_brand)s, %(card_last4)s, %(provider_status)s, %(accepted_at)s, "
    "%(now)s, %(actor)s, %(refund_reason)s)")
_DECLINED, _NOT_OPEN = "KK001", "KK002"  # the function's SQLSTATEs (nothing written)
_MOVES = {event: json.dumps(ATTEMPT.moves(event)) for event in OUTCOME_EVENTS.values()}  # as the function takes them


def settle_delivery_in_database(engine: Engine, adapter_name: str, status: PaymentStatus, delivery: Delivery, *,
                                actor: str) -> tuple[int, bool] | None | NotImplementedType:
    """PostgreSQL: `settle_delivery` in its own transaction, as one round trip.

    The whole transaction is the `kokin_settle_delivery` function, called in autocommit:
    the same statements as `_settle`, in the same order, with the same locks. The rules
    stay here: the function is given the moves the attempt's machine allows for the event
    and the payment's move on success. NotImplemented, nothing written, when the attempt is
    not an instalment payment's (a counter sale, or none): settle those with `settle_delivery`.
    """
    import psycopg

    event = OUTCOME_EVENTS[status.outcome]
    now = utcnow()
    params = {"adapter": adapter_name, "event_id": delivery.event_id, "event_type": delivery.event_type[:100],
              "provider_ref": status.provider_ref, "event": event, "moves": _MOVES[event],
              "payment_from": "open", "payment_to": PAYMENT.next("open", "succeed"),
              "card_brand": status.card_brand, "card_last4": status.card_last4, "provider_status": status.raw_status,
              "accepted_at": status.paid_at or now, "now": now, "actor": actor, "refund_reason": _REFUND_REASON}
    try:
        row = call_in_autocommit(engine, _SETTLE_DELIVERY_CALL, params)
    except psycopg.Error as exc:
        if exc.sqlstate == _DECLINED:  # only if the attempt changed kind under the check: never today
            return NotImplemented
        if exc.sqlstate == _NOT_OPEN:
            raise IllegalTransition(exc.diag.message_primary or "a success cannot be applied",
                                    details={"payment_id": int(exc.diag.message_detail or 0)}) from exc
        raise
    assert row is not None
    if row.outcome == "declined":
        return NotImplemented
    if row.outcome == "duplicate":
        return None
    return row.attempt_id, row.outcome == "applied"


@dataclass(frozen=True)
class Delivery:
    """A provider notification: recorded once per (adapter, event id)."""

    event_id: str
    event_type: str


def record_delivery(session: Session, adapter_name: str, delivery: Delivery) -> bool:
    """Record a notification that changes nothing; False when it was recorded before."""
    return Statements(session).first(_RECORD_DELIVERY[session.get_bind().dialect.name], {
        "p_adapter": adapter_name, "p_event_id": delivery.event_id, "p_event_type": delivery.event_type[:100],
        "p_received_at": utcnow()}) is not None


def _event(row: Any, kind: str, subject_type: str, subject_id: int, now: datetime, actor: str,
           data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An event's insert and its parameters."""
    values = dict(kind=kind, subject_type=subject_type, subject_id=str(subject_id),
                  municipality_id=row.municipality_id, actor=actor, data=data, recorded_at=now)
    return _RECORD_EVENT, {f"e_{name}": value for name, value in values.items()}


def _sale_writes(row: Any, attempt_status: str, accepted_at: datetime, now: datetime,
                 actor: str) -> list[tuple[Any, dict[str, Any]]]:
    """Follow the terminal's outcome on the sale; a success reported late still wins over a time-out."""
    sale_status = _SALE_OUTCOMES.get(attempt_status)
    if sale_status is None:
        return []
    params = {"p_payment_id": row.payment_id, "p_sale_id": row.sale_id, "p_accepted_at": accepted_at,
              "p_updated_at": now, "p_sale_status": sale_status}
    if attempt_status == "succeeded":
        params["p_payment_status"] = PAYMENT.next(row.payment_status, "succeed")
        writes = [(_SALE_PAYMENT_SUCCEEDED, params), (_SALE_PAID, params)]
    else:
        writes = [(_SALE_ENDED, params)]
    return writes + [_event(row, f"sale.{sale_status}", "sale", row.sale_id, now, actor,
                            {"payment_id": row.payment_id, "amount": row.amount})]


def _queue_double_payment(sql: Statements, row: Any, now: datetime, actor: str) -> None:
    """Keep a second payment of a booked instalment as an overpayment, its refund requested."""
    refund = sql.first(_QUEUE_REFUND, {"p_payment_id": row.payment_id, "p_amount": row.amount, "p_updated_at": now})
    assert refund is not None
    sql.batch([_event(row, "payment.double_payment", "payment", row.payment_id, now, actor,
                      {"amount": row.amount, "refund_id": refund.id})])
