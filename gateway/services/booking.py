"""Record what `domain.booking.decide` says of money received: for every channel, one writer.

Three ways to run the same writes: `record_bookings` for a file's payments (set-based, any
number of them, in the caller's transaction; on PostgreSQL a large batch goes through the
staged path), `stage_bookings` then `record_staged_bookings` for bookings decided chunk by
chunk before the rows they point at exist (PostgreSQL: COPYed into temporary tables, then
one statement per table), and `booking_writes` for one notification (prebuilt statements
for `Statements.batch`, sent with the settlement's other writes in one round trip). All
mark every issued slip of an applied instalment paid (whichever of its slips the money
came through: a reissue is paid too), write the money's record in the receipts journal
(`gateway.services.journal`), request the refund of a double payment where the fund's
policy refunds through the provider (by default the core system decides 充当 or 還付 on the
overpayment record instead), and raise the exceptions the decision flags, each once
((kind, subject) is unique; a repeat is dropped by the database).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Executable, bindparam, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain.booking import Booking, Flag, Instalment
from domain.calendar import business_date
from gateway.models import Assessment, FundType, Payment, ReconException, Refund, Slip, table
from gateway.models.base import on_ward
from gateway.services.exceptions import BULK_EXCEPTIONS, raise_exceptions, raise_staged_exceptions, stage_exceptions
from gateway.services.journal import booking_record_writes, record_kind, record_row, write_records

DOUBLE_PAYMENT_REFUND_REASON = "double payment (二重納付)"
_slips, _assessments, _payments = table(Slip), table(Assessment), table(Payment)
_refunds, _exceptions, _funds = table(Refund), table(ReconException), table(FundType)
_applied = _payments.alias("applied")
# An instalment's state as `decide` needs it, read (after the instalment is locked) with the slip.
BOOKED = exists().where(_applied.c.assessment_id == _assessments.c.id,
                        _applied.c.municipality_id == _assessments.c.municipality_id,
                        _applied.c.applied).label("booked")
# Refunded through the provider only where the fund's policy says so (else 充当 or 還付 in the core system).
# Channels whose provider can give money back; a store or app payment (agency) or eLTAX is
# refunded by the ward (by transfer), so its double payment always goes to the core system.
REFUNDABLE_CHANNELS = ("card", "paypay", "emoney")
PROVIDER_REFUND = exists().where(on_ward(_assessments, "fund_type_id", _funds),
                                 _funds.c.overpayment_policy == "provider_refund")
INSTALMENT_COLUMNS = (_assessments.c.amount.label("billed"), _slips.c.due_date, _slips.c.store_deadline,
                      _slips.c.status.label("slip_status"), BOOKED, _assessments.c.closed_reason)


def instalment_of(row: Any) -> Instalment:
    """The Instalment of a row read with INSTALMENT_COLUMNS."""
    return Instalment(billed=row.billed, due_date=row.due_date, store_deadline=row.store_deadline,
                      slip_void=row.slip_status == "void", closed=row.closed_reason, booked=bool(row.booked))


def paid_on(accepted_at: datetime) -> date:
    """The business date (Asia/Tokyo) of a payment accepted at `accepted_at`."""
    return business_date(accepted_at)


@dataclass(frozen=True)
class Booked:
    """A payment as booked: the decision and what its exceptions are about."""

    booking: Booking
    payment_id: int | None
    assessment_id: int | None
    amount: int
    paid_on: date
    slip_number: str | None
    subject_key: str  # what an exception is raised on, e.g. payment:12, agency_report:34
    channel: str  # the journal's channel: card, paypay, agency, emoney, ...
    paid_at: datetime  # when the money was accepted (timezone-aware)
    agency_report_id: int | None = None
    sale_id: int | None = None  # a counter sale's payment
    also: tuple[Flag, ...] = ()  # what the channel's own records raise besides (e.g. a 速報 cancelled)


def record_bookings(session: Session, municipality_id: int, booked: Sequence[Booked], *,
                    now: datetime) -> Counter[str]:
    """Write what the bookings imply, set-based, in the caller's transaction; the new exceptions by kind."""
    if len(booked) > BULK_EXCEPTIONS and session.get_bind().dialect.name == "postgresql":
        stage_bookings(session, booked)
        return record_staged_bookings(session, municipality_id, now=now)
    applied = sorted({b.assessment_id for b in booked if b.booking.applied and b.assessment_id is not None})
    for start in range(0, len(applied), 5_000):
        session.execute(update(_slips).where(_slips.c.municipality_id == municipality_id,
                                             _slips.c.assessment_id.in_(applied[start:start + 5_000]),
                                             _slips.c.status == "issued").values(status="paid"))
    write_records(session, [_record_row(municipality_id, b, now) for b in booked])
    to_refund = [b for b in booked if b.booking.refund and b.channel in REFUNDABLE_CHANNELS]
    if to_refund:
        by_provider = set(session.scalars(select(_assessments.c.id).where(
            _assessments.c.municipality_id == municipality_id,
            _assessments.c.id.in_({b.assessment_id for b in to_refund}), PROVIDER_REFUND)))
        refunds = [_refund_row(municipality_id, b, now) for b in to_refund if b.assessment_id in by_provider]
        if refunds:
            session.execute(insert(_refunds), refunds)
    return raise_exceptions(session, municipality_id, [row for b in booked for row in _exception_rows(b)])


# PostgreSQL: what bookings write besides their exceptions, staged for `record_staged_bookings`.
_STAGED = "bookings_to_record"
_STAGED_WRITES = (
    f"""UPDATE slips SET status = 'paid' FROM (SELECT DISTINCT assessment_id FROM {_STAGED}
                                               WHERE applied AND assessment_id IS NOT NULL) b
        WHERE slips.municipality_id = %(municipality_id)s AND slips.assessment_id = b.assessment_id
              AND slips.status = 'issued'""",
    f"""INSERT INTO refunds (payment_id, municipality_id, amount, reason, status, requested_by, created_at,
                             updated_at)
        SELECT b.payment_id, a.municipality_id, b.amount, %(reason)s, 'requested', 'system', %(now)s, %(now)s
        FROM {_STAGED} b
        JOIN assessments a ON a.municipality_id = %(municipality_id)s AND a.id = b.assessment_id
        JOIN fund_types f ON f.municipality_id = a.municipality_id AND f.id = a.fund_type_id
        WHERE b.refund AND f.overpayment_policy = 'provider_refund'
              AND b.channel IN {REFUNDABLE_CHANNELS!r}""",
    f"""INSERT INTO receipt_records (municipality_id, kind, reason, amount, channel, paid_at, business_date,
                                     payment_id, assessment_id, agency_report_id, created_at)
        SELECT %(municipality_id)s, kind, reason, amount, channel, paid_at, business_date, payment_id,
               assessment_id, agency_report_id, %(now)s FROM {_STAGED}""",
)


def stage_bookings(session: Session, booked: Sequence[Booked]) -> None:
    """PostgreSQL: COPY bookings into this transaction's temporary tables; `record_staged_bookings` writes them.

    The rows they point at (payments, reports) need not exist until then: a caller may stage
    bookings chunk by chunk with reserved ids and write its own rows once, at the end.
    """
    connection = session.connection()
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGED} (payment_id integer, "
                               "assessment_id integer, amount bigint, applied boolean, refund boolean, kind text, "
                               "reason text, channel text, paid_at timestamptz, business_date date, "
                               "agency_report_id integer) ON COMMIT DROP")
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor().copy(f"COPY {_STAGED} FROM STDIN") as copy:
        for b in booked:
            kind, reason = record_kind(b.booking)
            copy.write_row((b.payment_id, b.assessment_id, b.amount, b.booking.applied, b.booking.refund, kind,
                            reason, b.channel, b.paid_at, b.paid_on, b.agency_report_id))
    exceptions = [row for b in booked for row in _exception_rows(b)]
    if exceptions:
        stage_exceptions(session, exceptions)


def record_staged_bookings(session: Session, municipality_id: int, *, now: datetime) -> Counter[str]:
    """PostgreSQL: write the staged bookings (`stage_bookings`), a statement per table; the new exceptions by kind."""
    connection = session.connection()
    if connection.exec_driver_sql(f"SELECT to_regclass('pg_temp.{_STAGED}')").scalar():
        connection.exec_driver_sql(f"ANALYZE {_STAGED}")  # temporary tables get no autovacuum
        for statement in _STAGED_WRITES:
            connection.exec_driver_sql(statement, {"reason": DOUBLE_PAYMENT_REFUND_REASON, "now": now,
                                                   "municipality_id": municipality_id})
        connection.exec_driver_sql(f"TRUNCATE {_STAGED}")
    return raise_staged_exceptions(session, municipality_id)


# One notification's writes, prebuilt (see `Statements`).
_PAY_SLIPS = (update(_slips).where(_slips.c.municipality_id == bindparam("b_municipality_id"),
                                   _slips.c.assessment_id == bindparam("b_assessment_id"), _slips.c.status == "issued")
              .values(status="paid"))
_REFUND_COLUMNS = ("payment_id", "municipality_id", "amount", "reason", "status", "requested_by", "created_at",
                   "updated_at")
_REQUEST_REFUND = insert(_refunds).from_select(list(_REFUND_COLUMNS), select(
    *(bindparam(f"r_{name}", type_=_refunds.c[name].type) for name in _REFUND_COLUMNS))
    .where(exists().where(_assessments.c.id == bindparam("r_assessment_id"), PROVIDER_REFUND)))
_EXCEPTION_COLUMNS = ("municipality_id", "kind", "subject_key", "business_date", "amount", "slip_number",
                      "payment_id", "agency_report_id", "details", "status", "created_at")
_RAISE = {name: dialect.insert(_exceptions).values({c: bindparam(f"x_{c}", type_=_exceptions.c[c].type)
                                                    for c in _EXCEPTION_COLUMNS}).on_conflict_do_nothing()
          for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}


def booking_writes(dialect: str, municipality_id: int, booked: Booked, *,
                   now: datetime) -> list[tuple[Executable, dict[str, Any]]]:
    """`record_bookings` of one payment as statements to send with the settlement's other writes."""
    writes: list[tuple[Executable, dict[str, Any]]] = []
    if booked.booking.applied and booked.assessment_id is not None:
        writes.append((_PAY_SLIPS, {"b_municipality_id": municipality_id, "b_assessment_id": booked.assessment_id}))
    if booked.booking.refund and booked.channel in REFUNDABLE_CHANNELS:
        writes.append((_REQUEST_REFUND, {f"r_{k}": v for k, v in _refund_row(municipality_id, booked, now).items()}
                       | {"r_assessment_id": booked.assessment_id}))
    writes += booking_record_writes(municipality_id, booked.booking, amount=booked.amount, channel=booked.channel,
                                    paid_at=booked.paid_at, payment_id=booked.payment_id,
                                    assessment_id=booked.assessment_id, sale_id=booked.sale_id, now=now)
    for row in _exception_rows(booked):
        values = {"municipality_id": municipality_id, "status": "open", "created_at": now, **row}
        writes.append((_RAISE[dialect], {f"x_{c}": values[c] for c in _EXCEPTION_COLUMNS}))
    return writes


def _record_row(municipality_id: int, booked: Booked, now: datetime) -> dict[str, Any]:
    return record_row(municipality_id, booked.booking, amount=booked.amount, channel=booked.channel,
                      paid_at=booked.paid_at, payment_id=booked.payment_id, assessment_id=booked.assessment_id,
                      agency_report_id=booked.agency_report_id, now=now)


def _refund_row(municipality_id: int, booked: Booked, now: datetime) -> dict[str, Any]:
    return dict(payment_id=booked.payment_id, municipality_id=municipality_id, amount=booked.amount,
                reason=DOUBLE_PAYMENT_REFUND_REASON,
                status="requested", requested_by="system", created_at=now, updated_at=now)


def _exception_rows(booked: Booked) -> list[dict[str, Any]]:
    return [dict(kind=flag.kind, subject_key=booked.subject_key, business_date=booked.paid_on, amount=booked.amount,
                 slip_number=booked.slip_number, payment_id=booked.payment_id,
                 agency_report_id=booked.agency_report_id, details=flag.details)
            for flag in (*booked.booking.flags, *booked.also)]
