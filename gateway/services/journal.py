"""The receipts feed's journal: a record for every yen, written with the money event that causes it.

Every channel's money reaches the core system through these records (CONTRACT: the receipts
feed): money applied to an instalment is a `receipt`; money for a known instalment kept,
not applied, an `overpayment` with its reason (for 充当 or 還付 there); money no slip can be
found for, `unidentified`; a counter sale is its own claim, a `receipt` per fund of its
lines. Money that goes away again (a 速報 cancelled by the store, a refund made, a counter
void) is a `reversal` of the records it undoes, each reversed at most once (the database's
unique index), and what remains of a partly refunded payment is written again as a record
of its own: a reversal always has its record's amount.

The writers run inside the caller's transaction: `booking_records` (rows for a batch),
`booking_record_writes` (one notification's prebuilt statements), the staged SQL used by
`gateway.services.booking` on PostgreSQL, `reverse_cancelled_reports` (an agency import's
取消) and `reverse_refunded` (a refund that succeeded).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, bindparam, case, func, insert, literal, select, update
from sqlalchemy.orm import Session

from domain.booking import Booking
from domain.calendar import business_date
from gateway.models import AgencyReport, Assessment, Payment, ReceiptRecord, SaleLine, Slip, table

_records, _sale_lines, _payments = table(ReceiptRecord), table(SaleLine), table(Payment)
_reports, _slips, _assessments = table(AgencyReport), table(Slip), table(Assessment)

RECORD_COLUMNS = ("municipality_id", "kind", "reason", "amount", "channel", "paid_at", "business_date",
                  "payment_id", "assessment_id", "agency_report_id", "fund_type_id", "created_at")


def record_kind(booking: Booking) -> tuple[str, str | None]:
    """The record kind and reason of money booked as `booking` says."""
    if booking.applied:
        return "receipt", None
    if booking.kept_as == "unidentified":
        return "unidentified", None
    return "overpayment", booking.kept_as


def record_row(municipality_id: int, booking: Booking, *, amount: int, channel: str, paid_at: datetime,
               payment_id: int | None, assessment_id: int | None, agency_report_id: int | None,
               now: datetime) -> dict[str, Any]:
    """The journal row of one payment's money (not a counter sale's: see `booking_record_writes`)."""
    kind, reason = record_kind(booking)
    return dict(municipality_id=municipality_id, kind=kind, reason=reason, amount=amount, channel=channel,
                paid_at=paid_at, business_date=business_date(paid_at), payment_id=payment_id,
                assessment_id=assessment_id, agency_report_id=agency_report_id, fund_type_id=None, created_at=now)


def write_records(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert journal rows (`record_row`), a batch at a time."""
    for start in range(0, len(rows), 5_000):
        session.execute(insert(_records), list(rows[start:start + 5_000]))


_INSERT_ONE = insert(_records).values({name: bindparam(f"j_{name}", type_=_records.c[name].type)
                                       for name in RECORD_COLUMNS})
# A counter sale: a receipt per fund of its lines (the fee items' funds).
_SALE_BY_FUND = (select(bindparam("j_municipality_id", type_=_records.c.municipality_id.type), literal("receipt"),
                        literal(None, type_=_records.c.reason.type), func.sum(_sale_lines.c.amount),
                        bindparam("j_channel", type_=_records.c.channel.type),
                        bindparam("j_paid_at", type_=_records.c.paid_at.type),
                        bindparam("j_business_date", type_=_records.c.business_date.type),
                        bindparam("j_payment_id", type_=_records.c.payment_id.type),
                        literal(None, type_=_records.c.assessment_id.type),
                        literal(None, type_=_records.c.agency_report_id.type), _sale_lines.c.fund_type_id,
                        bindparam("j_created_at", type_=_records.c.created_at.type))
                 .where(_sale_lines.c.municipality_id == bindparam("j_municipality_id"),
                        _sale_lines.c.sale_id == bindparam("j_sale_id", type_=_sale_lines.c.sale_id.type))
                 .group_by(_sale_lines.c.fund_type_id).order_by(_sale_lines.c.fund_type_id))
_INSERT_SALE = insert(_records).from_select(list(RECORD_COLUMNS), _SALE_BY_FUND)


def booking_record_writes(municipality_id: int, booking: Booking, *, amount: int, channel: str, paid_at: datetime,
                          payment_id: int | None, assessment_id: int | None, sale_id: int | None,
                          now: datetime) -> list[tuple[Executable, dict[str, Any]]]:
    """One notification's journal statement: its record, or a counter sale's records by fund."""
    row = record_row(municipality_id, booking, amount=amount, channel=channel, paid_at=paid_at,
                     payment_id=payment_id, assessment_id=assessment_id, agency_report_id=None, now=now)
    params = {f"j_{name}": value for name, value in row.items()}
    if sale_id is not None:
        return [(_INSERT_SALE, params | {"j_sale_id": sale_id})]
    return [(_INSERT_ONE, params)]


def _live_records(session: Session, municipality_id: int, where: Any) -> list[Any]:
    """The ward's records (not reversals) matching `where` and not reversed yet, oldest first, locked."""
    reversed_ = select(_records.c.reverses_id).where(_records.c.municipality_id == municipality_id,
                                                     _records.c.reverses_id.is_not(None))
    return list(session.execute(select(_records).where(_records.c.municipality_id == municipality_id, where,
                                                       _records.c.kind != "reversal",
                                                       _records.c.id.not_in(reversed_))
                                .order_by(_records.c.id).with_for_update()).all())


def _reversal(record: Any, reason: str, now: datetime) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in RECORD_COLUMNS}
    return values | dict(kind="reversal", reason=reason, reverses_id=record.id,
                         business_date=business_date(now), created_at=now)


def reverse_records(session: Session, municipality_id: int, where: Any, *, amount: int | None, reason: str,
                    now: datetime) -> int:
    """Reverse the ward's live records matching `where`, oldest first, until `amount` yen are undone (None: all).

    A record only partly undone is reversed whole and its remainder written again as a new
    record of the same kind. Returns the yen undone.
    """
    undone = 0
    for record in _live_records(session, municipality_id, where):
        if amount is not None and undone >= amount:
            break
        take = record.amount if amount is None else min(record.amount, amount - undone)
        session.execute(insert(_records).values(_reversal(record, reason, now)))
        if take < record.amount:
            rest = {name: getattr(record, name) for name in RECORD_COLUMNS}
            session.execute(insert(_records).values(rest | dict(amount=record.amount - take, created_at=now,
                                                                business_date=business_date(now))))
        undone += take
    return undone


def reverse_refunded(session: Session, payment: Payment, revenue_refunded: int, *, voided: bool,
                     now: datetime) -> int:
    """A refund succeeded: reverse `revenue_refunded` yen of the payment's records (`refunded` / `voided`)."""
    if revenue_refunded <= 0:
        return 0
    return reverse_records(session, payment.municipality_id, _records.c.payment_id == payment.id,
                           amount=revenue_refunded,
                           reason="voided" if voided else "refunded", now=now)


def reverse_cancelled_reports(session: Session, municipality_id: int, import_id: int, *, now: datetime) -> int:
    """The 速報 cancelled by an import (速報取消): their payments cancelled, their records reversed.

    A cancelled payment no longer pays its instalment: it is no longer applied, and the
    instalment's slips paid by it are payable again unless another payment still pays it or
    the core system has closed the instalment since (then they are closed).
    Returns the number of payments cancelled.
    """
    cancelled = select(_reports.c.id).where(_reports.c.municipality_id == municipality_id,
                                            _reports.c.cancel_import_id == import_id)
    ward = municipality_id
    cancelled_payments = select(_reports.c.payment_id).where(_reports.c.municipality_id == ward,
                                                             _reports.c.cancel_import_id == import_id)
    payments = list(session.execute(
        select(_payments.c.id, _payments.c.assessment_id, _payments.c.applied)
        .where(_payments.c.municipality_id == ward, _payments.c.id.in_(cancelled_payments),
               _payments.c.status == "succeeded").with_for_update()).all())
    if payments:
        session.execute(update(_payments).where(_payments.c.municipality_id == ward,
                                                _payments.c.id.in_([p.id for p in payments]))
                        .values(status="cancelled", applied=False, overpaid=False, updated_at=now))
        reopened = sorted({p.assessment_id for p in payments if p.applied})
        if reopened:
            still_paid = select(_payments.c.assessment_id).where(_payments.c.municipality_id == ward,
                                                                 _payments.c.applied,
                                                                 _payments.c.assessment_id.in_(reopened))
            # Payable again, unless the core system closed the instalment meanwhile: then closed, as its
            # other slips were (status feed).
            closed = (select(_assessments.c.closed_reason)
                      .where(_assessments.c.municipality_id == ward, _assessments.c.id == _slips.c.assessment_id)
                      .scalar_subquery())
            session.execute(update(_slips).where(_slips.c.municipality_id == ward,
                                                 _slips.c.assessment_id.in_(reopened), _slips.c.status == "paid",
                                                 _slips.c.assessment_id.not_in(still_paid))
                            .values(status=case((closed.is_not(None), "closed"), else_="issued")))
    reverse_records(session, ward, _records.c.agency_report_id.in_(cancelled), amount=None,
                    reason="preliminary_cancelled", now=now)
    return len(payments)
