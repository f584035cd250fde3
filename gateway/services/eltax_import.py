"""Apply eLTAX payment data: each payment matched on its eL番号 and booked by the one booking rule.

The whole file is validated first (the adapter reads it in full) and applied in one
transaction, like an agency file (`agency_import`), into the same rows: an eLTAX payment is
an `agency_reports` row of the eLTAX adapter (its record id, eL番号 and method; no barcode),
so the remittance checks per bank account, the receipts feed's remittance date and
conservation treat it as they treat a store payment. The same bytes twice are one import
(SHA-256); a payment a later file carries again (its record id) changes nothing, except that
a remittance date not known before is kept.

The eL番号 names an instalment (`assessments.el_number`); its newest issued slip is the slip
paid (the newest of any status when none is issued). What cannot be booked cleanly is kept
and raised as for every channel (`domain.booking.decide`): an unknown eL番号 is
`unidentified` money, a second payment a `double_payment`, another amount an
`amount_mismatch`, a closed instalment or a void slip raised as such.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.agency import AgencyFileRejected
from adapters.eltax import EltaxAdapter, EltaxFile, EltaxPayment
from domain.booking import Booking, Instalment, decide
from domain.calendar import TOKYO
from domain.layouts import LineError
from gateway.db import transaction, utcnow
from gateway.errors import AgencyFileInvalid
from gateway.models import AgencyImport, AgencyReportLine, Assessment, Payment, Slip, table
from gateway.models import AgencyReport as ReportRow
from gateway.services.agency_import import AgencyImportResult
from gateway.services.booking import BOOKED, Booked, record_bookings
from gateway.services.events import record_event
from gateway.services.reference import get_municipality

CHANNEL = "eltax"
_reports, _payments, _slips, _assessments = table(ReportRow), table(Payment), table(Slip), table(Assessment)
_imports, _lines = table(AgencyImport), table(AgencyReportLine)
_CHUNK = 5_000  # keys per IN list


def import_eltax_file(session: Session, adapter: EltaxAdapter, data: bytes, *, municipality_code: str,
                      filename: str, source: str, actor: str) -> AgencyImportResult:
    """Validate `data` in full, then apply it atomically; the same file or payment twice applies once.

    Raises AgencyFileInvalid (every error with its line and field; nothing applied).
    """
    municipality_id = get_municipality(session, municipality_code).id
    digest = hashlib.sha256(data).hexdigest()
    before = session.execute(select(_imports.c.records, _imports.c.total_amount).where(
        _imports.c.municipality_id == municipality_id, _imports.c.adapter == adapter.name,
        _imports.c.sha256 == digest)).first()
    session.rollback()
    if before is not None:
        return AgencyImportResult(adapter.name, before.records, before.total_amount, already_imported=True)
    try:
        eltax_file = adapter.read(data)
    except AgencyFileRejected as exc:
        raise AgencyFileInvalid(adapter.name, exc.errors) from exc
    result = AgencyImportResult(adapter.name, len(eltax_file.payments), eltax_file.total_amount)
    with transaction(session):
        import_id = _claim_import(session, municipality_id, eltax_file, digest, filename, source, actor)
        if import_id is None:
            result.already_imported = True
            return result
        result.import_id = import_id
        new = _apply_to_known(session, municipality_id, adapter.name, eltax_file.payments, result)
        if new:
            _book_new(session, municipality_id, adapter.name, import_id, new, result)
        session.execute(update(_imports).where(_imports.c.municipality_id == municipality_id,
                                               _imports.c.id == import_id)
                        .values(new_records=result.records - result.repeated))
        record_event(session, "eltax.imported", "agency_import", import_id, municipality_id=municipality_id,
                     actor=actor, data={"adapter": adapter.name, "records": result.records,
                                        "total": result.total_amount, "repeated": result.repeated,
                                        "booked": result.booked, "remittance_dates": result.confirmed,
                                        "exceptions": dict(result.exceptions)})
    return result


def _claim_import(session: Session, municipality_id: int, eltax_file: EltaxFile, digest: str, filename: str,
                  source: str, actor: str) -> int | None:
    """Insert the import row; None when these bytes were imported before (or are being, concurrently)."""
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(_imports).values(
        municipality_id=municipality_id, adapter=eltax_file.adapter, filename=filename[:255], sha256=digest,
        source=source, created_on=None, records=len(eltax_file.payments), total_amount=eltax_file.total_amount,
        new_records=0, imported_by=actor[:100], imported_at=utcnow()).on_conflict_do_nothing()
    return session.execute(statement.returning(_imports.c.id)).scalar()


def _apply_to_known(session: Session, municipality_id: int, adapter: str, payments: Sequence[EltaxPayment],
                    result: AgencyImportResult) -> list[EltaxPayment]:
    """Payments an earlier file carried: repeats (a remittance date not known then is kept); the rest are new.

    Raises AgencyFileInvalid when a record id seen before comes with another eL番号, amount,
    moment or remittance date: the money would be counted wrong either way, a person must ask.
    """
    by_key = {p.match_key: p for p in payments}
    keys = sorted(by_key)
    known: dict[str, Any] = {}
    for start in range(0, len(keys), _CHUNK):
        for row in session.execute(select(_reports.c.id, _reports.c.match_key, _reports.c.remittance_on,
                                          _reports.c.el_number, _reports.c.amount, _reports.c.paid_at).where(
                _reports.c.municipality_id == municipality_id, _reports.c.adapter == adapter,
                _reports.c.match_key.in_(keys[start:start + _CHUNK]))):
            known[row.match_key] = row
    errors = [error for key, row in known.items() for error in _changed(row, by_key[key])]
    if errors:
        raise AgencyFileInvalid(adapter, sorted(errors, key=lambda e: (e.line, e.field or "")))
    for key, row in known.items():
        remitted_on = by_key[key].remitted_on
        if row.remittance_on is None and remitted_on is not None:
            session.execute(update(_reports).where(_reports.c.id == row.id).values(remittance_on=remitted_on))
            result.confirmed += 1  # its remittance date, now known
    result.repeated += len(known)
    return [p for p in payments if p.match_key not in known]


def _changed(row: Any, payment: EltaxPayment) -> list[LineError]:
    """What a payment imported before says differently now, field by field."""
    paid_at = datetime.combine(payment.paid_on, payment.paid_time, tzinfo=TOKYO)
    then = {"el_number": row.el_number, "amount": row.amount, "paid_at": row.paid_at.astimezone(TOKYO),
            "remitted_on": row.remittance_on}
    now = {"el_number": payment.el_number, "amount": payment.amount, "paid_at": paid_at,
           # a remittance date learnt now, or left out now, is no change
           "remitted_on": payment.remitted_on if None not in (row.remittance_on, payment.remitted_on)
           else row.remittance_on}
    return [LineError(payment.line, "paid_on" if name == "paid_at" else name,
                      f"record {payment.record_id} was imported before with another {name.replace('_', ' ')}")
            for name in then if then[name] != now[name]]


@dataclass
class _Target:
    """The instalment an eL番号 names and the slip paid, as `decide` needs them (read under the lock)."""

    assessment_id: int
    billed: int
    closed: str | None
    booked: bool
    slip: Any  # the newest issued slip, else the newest; None when the instalment has none


def _book_new(session: Session, municipality_id: int, adapter: str, import_id: int,
              payments: list[EltaxPayment], result: AgencyImportResult) -> None:
    """Decide each new payment, oldest first, and write its payment, report row and booking."""
    targets = _targets(session, municipality_id, {p.el_number for p in payments})
    decided: list[tuple[EltaxPayment, _Target | None, Booking]] = []
    for payment in sorted(payments, key=lambda p: (p.paid_on, p.paid_time, p.record_id)):
        target = targets.get(payment.el_number)
        if target is not None and target.slip is None:
            target = None
        # No store deadline: eLTAX takes the eL-QR on its own terms; lateness is the due date's.
        instalment = None if target is None else Instalment(
            billed=target.billed, due_date=target.slip.due_date, slip_void=target.slip.status == "void",
            closed=target.closed, booked=target.booked)
        booking = decide(payment.amount, payment.paid_on, instalment, unknown_reason=_unknown(payment, targets))
        if booking.applied and target is not None:
            target.booked = True  # a later payment of it in this file is a double payment
        decided.append((payment, target, booking))
    now = utcnow()
    booked = [_write(session, municipality_id, adapter, import_id, payment, target, booking, now)
              for payment, target, booking in decided]
    result.exceptions.update(record_bookings(session, municipality_id, booked, now=now))
    result.booked += sum(1 for b in booked if b.booking.applied)


def _unknown(payment: EltaxPayment, targets: dict[str, _Target]) -> str:
    if payment.el_number in targets:
        return "the instalment of this eL番号 has no slip"
    return "no instalment has this eL番号"


def _targets(session: Session, municipality_id: int, el_numbers: set[str]) -> dict[str, _Target]:
    """The instalments the eL番号 name, locked (payments of them queue behind this import), with their slips."""
    rows: list[Any] = []
    ordered = sorted(el_numbers)
    for start in range(0, len(ordered), _CHUNK):
        rows += session.execute(
            select(_assessments.c.id, _assessments.c.el_number, _assessments.c.amount, _assessments.c.closed_reason)
            .where(_assessments.c.municipality_id == municipality_id,
                   _assessments.c.el_number.in_(ordered[start:start + _CHUNK]))
            .order_by(_assessments.c.id).with_for_update()).all()
    targets = {row.el_number: _Target(row.id, row.amount, row.closed_reason, False, None) for row in rows}
    by_id = {t.assessment_id: t for t in targets.values()}
    ids = sorted(by_id)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        of_chunk = (_assessments.c.municipality_id == municipality_id) & _assessments.c.id.in_(chunk)
        for row in session.execute(select(_assessments.c.id, BOOKED).where(of_chunk)):
            by_id[row.id].booked = bool(row.booked)
        # Newest issued slip first, then the newest of the others: the last one read per instalment wins.
        for slip in session.execute(select(_slips.c.id, _slips.c.assessment_id, _slips.c.number, _slips.c.reissue,
                                           _slips.c.status, _slips.c.due_date)
                                    .where(_slips.c.municipality_id == municipality_id,
                                           _slips.c.assessment_id.in_(chunk))
                                    .order_by(case((_slips.c.status == "issued", 1), else_=0), _slips.c.reissue,
                                              _slips.c.id)):
            by_id[slip.assessment_id].slip = slip
    return targets


def _write(session: Session, municipality_id: int, adapter: str, import_id: int, payment: EltaxPayment,
           target: _Target | None, booking: Booking, now: datetime) -> Booked:
    """Insert the payment (known instalment) and the report row; return the booking to record."""
    paid_at = datetime.combine(payment.paid_on, payment.paid_time, tzinfo=TOKYO)
    slip = None if target is None else target.slip
    payment_id = None
    if target is not None and slip is not None:  # `_book_new` books no instalment without a slip
        payment_id = session.execute(insert(_payments).values(
            municipality_id=municipality_id, slip_id=slip.id, assessment_id=target.assessment_id, channel=CHANNEL,
            status="succeeded", amount=payment.amount, fee_amount=0, refunded_amount=0, applied=booking.applied,
            overpaid=booking.overpaid, accepted_at=paid_at, created_at=now, updated_at=now)
            .returning(_payments.c.id)).scalar_one()
    # The unique (municipality, adapter, match_key) refuses the same payment from a concurrent import.
    report_id = session.execute(insert(_reports).values(
        municipality_id=municipality_id, adapter=adapter, match_key=payment.match_key, barcode="",
        slip_number="" if slip is None else slip.number, reissue=0 if slip is None else slip.reissue,
        amount=payment.amount, paid_at=paid_at, paid_on=payment.paid_on, store_code="", chain_code="",
        channel=CHANNEL, preliminary_import_id=import_id, final_import_id=import_id, cancel_import_id=None,
        remittance_on=payment.remitted_on, payment_id=payment_id, created_at=now, record_id=payment.record_id,
        el_number=payment.el_number, method=payment.method).returning(_reports.c.id)).scalar_one()
    if payment.text is not None:  # the record as received; a repeat in a later file keeps this one
        session.execute(insert(_lines).values(agency_report_id=report_id, kind="eltax",
                                              municipality_id=municipality_id, line=payment.text))
    return Booked(booking, payment_id, None if target is None else target.assessment_id, payment.amount,
                  payment.paid_on, None if slip is None else slip.number, f"agency_report:{report_id}",
                  channel=CHANNEL, paid_at=paid_at, agency_report_id=report_id)
