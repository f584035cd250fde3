"""Record what a provider reports of an attempt (webhook, polling, janitor): settled once, booked once.

One path on every database: the attempt, its payment and its instalment (or its counter
sale) are locked, the instalment is read, `domain.booking.decide` says what the money
books, and `gateway.services.booking` writes it. On PostgreSQL the statements go
straight to the driver as prepared statements, sent in two pipelines (the delivery, the
locks and the read; then the writes), so a notification costs three round trips with
the commit.

Every statement names the attempt's ward (docs/scaling.md): the caller says it when it knows
it (a notification's reference names it, gateway.services.payments.ward_of_reference);
otherwise it is read first from the attempt by its provider reference, the one lookup here
without a ward (references made before they named their ward, callers that do not say it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, bindparam, insert, literal, select, true, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.orm import Session

from adapters.base import Outcome, PaymentStatus
from domain.booking import Booking, Instalment, decide
from domain.errors import IllegalTransition
from domain.lifecycle import ATTEMPT, PAYMENT
from gateway.db import Statements, transaction, utcnow
from gateway.errors import NotFound
from gateway.models import Assessment, Event, Payment, PaymentAttempt, Sale, Slip, WebhookDelivery, table
from gateway.models.base import on_ward
from gateway.services.booking import INSTALMENT_COLUMNS, Booked, booking_writes, instalment_of, paid_on
from gateway.services.events import record_events
from gateway.services.payments import ward_of_reference

OUTCOME_EVENTS = {Outcome.SUCCEEDED: "succeed", Outcome.FAILED: "fail", Outcome.EXPIRED: "expire",
                  Outcome.CANCELLED: "cancel", Outcome.UNKNOWN: "lose_track", Outcome.PENDING: "open"}

_attempts, _payments, _assessments, _slips = table(PaymentAttempt), table(Payment), table(Assessment), table(Slip)
_sales, _events, _deliveries = table(Sale), table(Event), table(WebhookDelivery)
_SETTLEMENT_COLUMNS = (_attempts.c.id, _attempts.c.status, _payments.c.id.label("payment_id"),
                       _payments.c.status.label("payment_status"), _payments.c.municipality_id, _payments.c.slip_id,
                       _payments.c.assessment_id, _payments.c.amount, _payments.c.fee_amount, _payments.c.sale_id,
                       _payments.c.channel)
_OF_ATTEMPT = (_attempts.c.adapter == bindparam("p_adapter"), _attempts.c.provider_ref == bindparam("p_provider_ref"),
               _attempts.c.municipality_id == bindparam("p_ward"))
# The ward of an attempt whose caller does not know it: found by the provider's reference alone.
_WARD_OF_ATTEMPT = select(_attempts.c.municipality_id).where(*_OF_ATTEMPT[:2])
# The attempt, its payment and the instalment, locked in one statement: settlements of payments
# of one instalment queue behind each other.
_LOCK_FOR_SETTLEMENT = (
    select(*_SETTLEMENT_COLUMNS)
    .select_from(_attempts.join(_payments, on_ward(_attempts, "payment_id", _payments))
                 .join(_assessments, on_ward(_payments, "assessment_id", _assessments)))
    .where(*_OF_ATTEMPT).with_for_update())
# What `decide` needs of the instalment, read by a statement of its own after the lock: under
# READ COMMITTED it sees every booking committed while this one waited for the lock.
_READ_INSTALMENT = (
    select(*INSTALMENT_COLUMNS, _slips.c.number.label("slip_number"))
    .select_from(_attempts.join(_payments, on_ward(_attempts, "payment_id", _payments))
                 .join(_slips, on_ward(_payments, "slip_id", _slips))
                 .join(_assessments, on_ward(_payments, "assessment_id", _assessments)))
    .where(*_OF_ATTEMPT))
# SQLite has no FOR UPDATE: a write first takes the database's write lock (waiting for it), so
# the reads that follow see every booking committed before, and none can commit meanwhile.
_SQLITE_WRITE_LOCK = update(_attempts).where(*_OF_ATTEMPT).values(status=_attempts.c.status)
# A counter sale's payment has no instalment: the same columns, the sale locked instead.
_LOCK_SALE_FOR_SETTLEMENT = (
    select(*_SETTLEMENT_COLUMNS, _sales.c.total)
    .select_from(_attempts.join(_payments, on_ward(_attempts, "payment_id", _payments))
                 .join(_sales, on_ward(_payments, "sale_id", _sales)))
    .where(*_OF_ATTEMPT).with_for_update())
# A notification is recorded once per (adapter, event id, chain: its ward), in the transaction of the change.
_DELIVERY_VALUES: dict[str, Any] = dict(adapter=bindparam("p_adapter"), event_id=bindparam("p_event_id"),
                                        chain=bindparam("p_chain"), event_type=bindparam("p_event_type"),
                                        received_at=bindparam("p_received_at"))
_RECORD_DELIVERY = {name: dialect.insert(_deliveries).values(**_DELIVERY_VALUES).on_conflict_do_nothing()
                    .returning(_deliveries.c.id)
                    for name, dialect in (("postgresql", postgresql_dialect), ("sqlite", sqlite_dialect))}
# PostgreSQL: the delivery recorded and, when it is new, the rows locked, in one statement.
_recorded = _RECORD_DELIVERY["postgresql"].cte("recorded")
_locked = _LOCK_FOR_SETTLEMENT.where(_recorded.c.id.is_not(None)).lateral("locked")
_RECORD_AND_LOCK = (select(_recorded.c.id.label("delivery_id"), *_locked.c)
                    .select_from(select(literal(1).label("one")).subquery("one")
                                 .outerjoin(_recorded, true()).outerjoin(_locked, true())))
_SETTLE_ATTEMPT = (update(_attempts).where(_attempts.c.id == bindparam("p_attempt_id"),
                                           _attempts.c.municipality_id == bindparam("p_ward"))
                   .values(status=bindparam("p_status"), card_brand=bindparam("p_card_brand"),
                           card_last4=bindparam("p_card_last4"), updated_at=bindparam("p_updated_at")))
_BOOK_PAYMENT = (update(_payments).where(_payments.c.id == bindparam("p_payment_id"),
                                         _payments.c.municipality_id == bindparam("p_ward"))
                 .values(status=bindparam("p_payment_status"), accepted_at=bindparam("p_accepted_at"),
                         updated_at=bindparam("p_updated_at"), applied=bindparam("p_applied"),
                         overpaid=bindparam("p_overpaid")))
_SALE_OUTCOMES = {"succeeded": "paid", "cancelled": "cancelled", "expired": "timed_out", "failed": "failed"}
_SALE_PAID = (update(_sales).where(_sales.c.id == bindparam("p_sale_id"),
                                   _sales.c.municipality_id == bindparam("p_ward"))
              .values(status="paid", completed_at=bindparam("p_accepted_at")))
_SALE_ENDED = (update(_sales).where(_sales.c.id == bindparam("p_sale_id"),
                                    _sales.c.municipality_id == bindparam("p_ward"), _sales.c.status == "waiting")
               .values(status=bindparam("p_sale_status")))
_EVENT_COLUMNS = ("kind", "subject_type", "subject_id", "municipality_id", "actor", "data", "recorded_at")
# A marker among a settlement's writes: its events go to record_events (chained at commit), not to the batch.
_RECORD_EVENT = insert(_events).values({name: bindparam(f"e_{name}", type_=_events.c[name].type)
                                        for name in _EVENT_COLUMNS})


@dataclass(frozen=True)
class Delivery:
    """A provider notification: recorded once per (adapter, event id, chain)."""

    event_id: str
    event_type: str


def record_delivery(session: Session, adapter_name: str, delivery: Delivery, *, chain: int) -> bool:
    """Record a notification that changes nothing in `chain` (its ward, 0: none); False when it was recorded before."""
    return Statements(session).first(_RECORD_DELIVERY[session.get_bind().dialect.name],
                                     _delivery_params(adapter_name, delivery, chain)) is not None


def settle_attempt(session: Session, adapter_name: str, status: PaymentStatus, *, actor: str,
                   municipality_id: int | None = None) -> PaymentAttempt:
    """Record what the provider says of an attempt (polling, janitor, return page); idempotent.

    The same status twice changes nothing; a success books the payment as `decide` says:
    applied once, a second success of a booked instalment kept as an overpayment with its
    refund requested. `municipality_id`: the attempt's ward, when the caller knows it (else
    it is read from the attempt first).
    """
    with transaction(session):
        settled = _settle(session, adapter_name, status, actor=actor, delivery=None, ward=municipality_id)
    assert settled is not None  # only a delivery can be a repeat
    attempt = session.get(PaymentAttempt, (settled.attempt_id, settled.ward), populate_existing=True)  # Core: reload
    assert attempt is not None
    return attempt


def settle_in_transaction(session: Session, adapter_name: str, status: PaymentStatus, *, actor: str,
                          municipality_id: int | None = None) -> tuple[int, bool]:
    """`settle_attempt` inside the caller's transaction: the attempt's id and whether anything changed."""
    settled = _settle(session, adapter_name, status, actor=actor, delivery=None, ward=municipality_id)
    assert settled is not None  # only a delivery can be a repeat
    return settled.attempt_id, settled.changed


def settle_notification(session: Session, adapter_name: str, status: PaymentStatus, delivery: Delivery, *,
                        actor: str, municipality_id: int | None = None,
                        reference: str | None = None) -> tuple[int, bool] | None:
    """Record a provider notification and settle what it reports, in a transaction of its own.

    The attempt's id and whether anything changed; None, nothing changed, when (adapter,
    event id) was recorded before in the attempt's ward. The ward: `municipality_id` when the
    caller knows it; else the one our attempt `reference` in the notification names (read in
    this transaction); else the attempt's, read first.
    """
    with transaction(session):
        ward = municipality_id if municipality_id is not None else ward_of_reference(session, reference)
        settled = _settle(session, adapter_name, status, actor=actor, delivery=delivery, ward=ward)
    return None if settled is None else (settled.attempt_id, settled.changed)


def _delivery_params(adapter_name: str, delivery: Delivery, chain: int) -> dict[str, Any]:
    return {"p_adapter": adapter_name, "p_event_id": delivery.event_id, "p_chain": chain,
            "p_event_type": delivery.event_type[:100], "p_received_at": utcnow()}


@dataclass(frozen=True)
class _Settled:
    attempt_id: int
    ward: int
    changed: bool


def _ward_of_attempt(sql: Statements, adapter_name: str, provider_ref: str) -> int:
    """The ward of the attempt the provider's reference names, looked up without it; NotFound if none."""
    found = sql.first(_WARD_OF_ATTEMPT, {"p_adapter": adapter_name, "p_provider_ref": provider_ref})
    if found is None:
        raise NotFound("no such payment attempt")
    return int(found.municipality_id)


def _settle(session: Session, adapter_name: str, status: PaymentStatus, *, actor: str,
            delivery: Delivery | None, ward: int | None) -> _Settled | None:
    """Settle the ward's attempt: its id and whether anything changed (None for a repeated delivery)."""
    sql = Statements(session)
    if ward is None:
        ward = _ward_of_attempt(sql, adapter_name, status.provider_ref)
    params: dict[str, Any] = {"p_adapter": adapter_name, "p_provider_ref": status.provider_ref, "p_ward": ward}
    if delivery is not None:
        params |= _delivery_params(adapter_name, delivery, ward)
    recorded, row, instalment = _record_and_lock(sql, session.get_bind().dialect.name, params, delivery is not None)
    if not recorded:
        return None
    if row is None:
        row = sql.first(_LOCK_SALE_FOR_SETTLEMENT, params)
        if row is None:
            raise NotFound("no such payment attempt")
    event = OUTCOME_EVENTS[status.outcome]
    if not ATTEMPT.allows(row.status, event):
        return _Settled(row.id, ward, False)  # already there, or an older report arriving late: the state stands
    new_status = ATTEMPT.next(row.status, event)
    now = utcnow()
    writes = [(_SETTLE_ATTEMPT, {"p_attempt_id": row.id, "p_ward": ward, "p_status": new_status,
                                 "p_card_brand": status.card_brand, "p_card_last4": status.card_last4,
                                 "p_updated_at": now}),
              _event(row, f"attempt.{event}", "payment_attempt", row.id, now, actor,
                     {"adapter": adapter_name, "status": new_status, "provider_status": status.raw_status})]
    if new_status == "succeeded":
        if row.payment_status != "open":
            # A payment has one attempt and no cancel path yet, so this cannot happen today. When
            # either arrives, a success here must become an overpayment, never be dropped.
            raise IllegalTransition(f"payment {row.payment_id} is {row.payment_status}; a success cannot be applied",
                                    details={"payment_id": row.payment_id})
        accepted_at = status.paid_at or now
        # A counter sale is its own instalment: what it asks, never late, paid once (one attempt a sale).
        of = instalment_of(instalment) if row.sale_id is None else Instalment(billed=row.total)
        booking = decide(row.amount, paid_on(accepted_at), of)
        writes += _booking_writes(session, row, instalment, booking, accepted_at, now, actor)
    elif row.sale_id is not None and new_status in _SALE_OUTCOMES:
        writes += [(_SALE_ENDED, {"p_sale_id": row.sale_id, "p_ward": ward,
                                  "p_sale_status": _SALE_OUTCOMES[new_status]}),
                   _event(row, f"sale.{_SALE_OUTCOMES[new_status]}", "sale", row.sale_id, now, actor,
                          {"payment_id": row.payment_id, "amount": row.amount})]
    record_events(session, [{name.removeprefix("e_"): value for name, value in params.items()}
                            for statement, params in writes if statement is _RECORD_EVENT])  # chained at commit
    sql.write([(statement, params) for statement, params in writes if statement is not _RECORD_EVENT])
    return _Settled(row.id, ward, True)


def _record_and_lock(sql: Statements, dialect: str, params: dict[str, Any],
                     delivery: bool) -> tuple[bool, Any | None, Any | None]:
    """Record the delivery (if any), lock the instalment payment's rows, read the instalment: one round trip.

    (whether the delivery was new, the locked row or None when the attempt is not an instalment
    payment's, the instalment's row). On PostgreSQL the delivery and the lock are one statement,
    and a repeated delivery locks nothing.
    """
    if delivery and dialect == "postgresql":
        first, instalment = sql.batch([(_RECORD_AND_LOCK, params), (_READ_INSTALMENT, params)])
        assert first is not None  # one row, whatever was found
        return first.delivery_id is not None, first if first.id is not None else None, instalment
    first_write = _RECORD_DELIVERY[dialect] if delivery else _SQLITE_WRITE_LOCK if dialect == "sqlite" else None
    reads: list[tuple[Executable, dict[str, Any]]] = [(_LOCK_FOR_SETTLEMENT, params), (_READ_INSTALMENT, params)]
    answers = sql.batch(reads if first_write is None else [(first_write, params), *reads])
    return not delivery or answers[0] is not None, answers[-2], answers[-1]


def _booking_writes(session: Session, row: Any, instalment: Any, booking: Booking, accepted_at: datetime,
                    now: datetime, actor: str) -> list[tuple[Any, dict[str, Any]]]:
    """The payment booked as decided, and what that implies for the instalment or the sale."""
    writes: list[tuple[Any, dict[str, Any]]] = [(_BOOK_PAYMENT, {
        "p_payment_id": row.payment_id, "p_ward": row.municipality_id,
        "p_payment_status": PAYMENT.next(row.payment_status, "succeed"), "p_accepted_at": accepted_at,
        "p_updated_at": now, "p_applied": booking.applied, "p_overpaid": booking.overpaid})]
    if row.sale_id is not None:  # the terminal's success wins over a time-out reported before it
        writes += [(_SALE_PAID, {"p_sale_id": row.sale_id, "p_ward": row.municipality_id,
                                 "p_accepted_at": accepted_at}),
                   _event(row, "sale.paid", "sale", row.sale_id, now, actor,
                          {"payment_id": row.payment_id, "amount": row.amount})]
    elif booking.applied:
        writes.append(_event(row, "payment.applied", "payment", row.payment_id, now, actor,
                             {"amount": row.amount, "fee": row.fee_amount, "slip_id": row.slip_id}))
    else:
        writes.append(_event(row, f"payment.{booking.kept_as}", "payment", row.payment_id, now, actor,
                             {"amount": row.amount, "flags": booking.kinds(), "overpaid": booking.overpaid}))
    booked = Booked(booking, row.payment_id, row.assessment_id, row.amount, paid_on(accepted_at),
                    None if instalment is None else instalment.slip_number, f"payment:{row.payment_id}",
                    channel=row.channel, paid_at=accepted_at, sale_id=row.sale_id)
    return writes + booking_writes(session.get_bind().dialect.name, row.municipality_id, booked, now=now)


def _event(row: Any, kind: str, subject_type: str, subject_id: int, now: datetime, actor: str,
           data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An event's insert and its parameters."""
    values = dict(kind=kind, subject_type=subject_type, subject_id=str(subject_id),
                  municipality_id=row.municipality_id, actor=actor, data=data, recorded_at=now)
    return _RECORD_EVENT, {f"e_{name}": value for name, value in values.items()}
