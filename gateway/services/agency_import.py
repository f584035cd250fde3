"""Apply a collection agency's file: 速報 books the payment, 確報 confirms it, 取消 asks a person.

The whole file is validated first (the adapter reads it in full: record lengths, kinds and
order, trailer count and total, barcodes, dates) and applied in one transaction. The same
bytes twice are one import (SHA-256); a record an agency repeats in a later file finds
its store payment (`AgencyReport.match_key`) and changes nothing. What cannot be booked
cleanly is booked as far as it can be, never dropped, and raised as an exception of the
contract's kind for a person.

Bulk by design (a file of a million records): every record's key is staged in a temporary
table (COPY on PostgreSQL, `agency_stage`) with its line as received; 確報 and 取消 of known
payments are one UPDATE each, which writes no line (its rows stay on their pages): the lines go
to `agency_report_lines`, from the UPDATE's RETURNING in the same statement; the records of
payments not seen before are then staged in full and booked by `agency_new_payments` (decided
one by one in Python by the one booking rule, written set-based).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import (
    Column,
    CursorResult,
    String,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.agency import AgencyAdapter, AgencyFile, AgencyFileRejected, paused_gc
from adapters.eltax import EltaxAdapter
from gateway.db import transaction, utcnow
from gateway.errors import AgencyFileInvalid
from gateway.models import AgencyImport, AgencyReportLine, table
from gateway.models import AgencyReport as ReportRow
from gateway.observability.metrics import observed_import
from gateway.progress import NoProgress, Progress
from gateway.services.agency_new_payments import ImportScope, NewPayments, apply_new_payments
from gateway.services.agency_stage import KEYS, drop_stage, stage_keys, stage_new_records
from gateway.services.events import record_event
from gateway.services.exceptions import raise_exceptions
from gateway.services.journal import reverse_cancelled_reports
from gateway.services.reference import get_municipality

_reports, _lines = table(ReportRow), table(AgencyReportLine)


@dataclass
class AgencyImportResult:
    adapter: str
    records: int
    total_amount: int
    import_id: int | None = None
    already_imported: bool = False
    repeated: int = 0  # records an earlier file had already applied
    booked: int = 0  # new store payments booked to an instalment
    confirmed: int = 0  # 確報 of payments reported before
    cancelled: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)



# The import's joins of the staged file with the reports fit in memory at a million records
# (about 80 MB); with the default 4 MB they spilled to disk in 16 batches: twice the time.
IMPORT_WORK_MEM = "256MB"


@observed_import("agency")
def import_agency_file(session: Session, agency: AgencyAdapter | EltaxAdapter, data: bytes, *, municipality_code: str,
                       filename: str, source: str, actor: str, progress: Progress | None = None,
                       workers: int | None = None) -> AgencyImportResult:
    """Validate `data` in full, then apply it atomically; the same file or record twice applies once.

    A large file is read by `workers` processes (default: one per core this process may use).

    Raises AgencyFileInvalid (every error with its record and field; nothing applied).
    eLTAX payment data (an EltaxAdapter) is applied by `eltax_import`, into the same reports.
    """
    if isinstance(agency, EltaxAdapter):
        from gateway.services.eltax_import import import_eltax_file  # it builds on this module's result

        return import_eltax_file(session, agency, data, municipality_code=municipality_code, filename=filename,
                                 source=source, actor=actor)
    municipality = get_municipality(session, municipality_code)
    municipality_id, client_code = municipality.id, municipality.client_code
    digest = hashlib.sha256(data).hexdigest()
    before = _imported_before(session, municipality_id, agency.name, digest)
    session.rollback()
    if before is not None:  # the same bytes were validated and applied then: no need to read them again
        return AgencyImportResult(agency.name, before.records, before.total_amount, already_imported=True)
    try:
        agency_file = agency.read(data, workers=workers or len(os.sched_getaffinity(0)))
    except AgencyFileRejected as exc:
        raise AgencyFileInvalid(agency.name, exc.errors) from exc
    if agency_file.client_code is not None and agency_file.client_code != client_code:
        raise AgencyFileInvalid(agency.name, [f"record 1, field client_code: the file is for client "
                                              f"{agency_file.client_code}, municipality {municipality_code} is "
                                              f"client {client_code}"])
    result = AgencyImportResult(agency.name, len(agency_file.reports), agency_file.total_amount)
    with paused_gc(), transaction(session):
        if session.get_bind().dialect.name == "postgresql":  # one hash join over the whole file, in memory
            session.execute(text(f"SET LOCAL work_mem = '{IMPORT_WORK_MEM}'"))
        import_id = _claim_import(session, municipality_id, agency, agency_file, digest, filename, source, actor)
        if import_id is None:
            result.already_imported = True
            return result
        result.import_id = import_id
        reports, lines, progress = agency_file.reports, agency_file.raw_line, progress or NoProgress()
        del agency_file  # its records go once staged (`reports.clear()`): their memory is reused by the booking
        stage_keys(session, reports, progress, lines)
        scope = ImportScope(municipality_id, client_code, agency.name, import_id)
        if _apply_to_known(session, scope, result):
            new = session.scalars(select(KEYS.c.seq).order_by(KEYS.c.seq)).all()
            if new:
                stage_new_records(session, [(seq, reports[seq]) for seq in new], lines)
                reports.clear()  # the adapter's list, read by nothing after this
                _add(result, apply_new_payments(session, scope, len(new), progress))
        if result.cancelled:  # 速報取消: the payments cancelled, their receipts reversed
            reverse_cancelled_reports(session, municipality_id, import_id, now=utcnow())
        session.execute(update(AgencyImport).where(AgencyImport.municipality_id == municipality_id,
                                                   AgencyImport.id == import_id)
                        .values(new_records=result.records - result.repeated))
        record_event(session, "agency.imported", "agency_import", import_id, municipality_id=municipality_id,
                     actor=actor, data={"adapter": agency.name, "records": result.records,
                                        "total": result.total_amount, "repeated": result.repeated,
                                        "booked": result.booked, "confirmed": result.confirmed,
                                        "cancelled": result.cancelled, "exceptions": dict(result.exceptions)})
        drop_stage(session)
    return result


def _imported_before(session: Session, municipality_id: int, adapter: str, digest: str) -> Any | None:
    imports = table(AgencyImport)
    return session.execute(select(imports.c.records, imports.c.total_amount)
                           .where(imports.c.municipality_id == municipality_id, imports.c.adapter == adapter,
                                  imports.c.sha256 == digest)).first()


def _claim_import(session: Session, municipality_id: int, agency: AgencyAdapter, agency_file: AgencyFile,
                  digest: str, filename: str, source: str, actor: str) -> int | None:
    """Insert the import row; None when these bytes were imported before (or are being, concurrently)."""
    values = dict(municipality_id=municipality_id, adapter=agency.name, filename=filename[:255],
                  sha256=digest, source=source, created_on=agency_file.created_on,
                  records=len(agency_file.reports), total_amount=agency_file.total_amount, new_records=0,
                  imported_by=actor[:100], imported_at=utcnow())
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table(AgencyImport)).values(**values).on_conflict_do_nothing()
    return session.execute(statement.returning(table(AgencyImport).c.id)).scalar()


def _known(scope: ImportScope) -> Any:
    return and_(_reports.c.municipality_id == scope.municipality_id, _reports.c.adapter == scope.adapter,
                _reports.c.match_key == KEYS.c.match_key)


def _apply_to_known(session: Session, scope: ImportScope, result: AgencyImportResult) -> bool:
    """確報 and 取消 of store payments reported before: one UPDATE each; repeats change nothing.

    Each record that changed a row keeps its line as received (`_update_known`).

    Returns whether records of payments not seen before may remain; the records of known
    payments then leave the stage, so what stays is new. A record whose
    UPDATE found its column already set (an earlier file's), or that the file holds twice, is
    a repeat: the known records less the ones that changed a row.
    """
    ((confirmed_rows,),) = _update_known(session, scope, "final", {"remittance_on": KEYS.c.remittance_on})
    ((preliminary_rows,),) = _update_known(session, scope, "preliminary")
    cancelled = _update_known(session, scope, "cancel", returning=(
        _reports.c.id, _reports.c.slip_number, _reports.c.amount, _reports.c.paid_on, _reports.c.payment_id))
    changed = confirmed_rows + preliminary_rows + len(cancelled)
    if changed and session.get_bind().dialect.name != "postgresql":
        _keep_lines_of_known(session, scope)
    new = changed < result.records  # else every record changed a row: nothing new, nothing repeated
    if new:
        # What stays is new: only those records are staged in full, and the chunks of new payments
        # read that stage alone (a NOT EXISTS per chunk was planned as a nested loop over every
        # report written so far, before statistics existed: quadratic).
        known = cast(CursorResult[Any], session.execute(delete(KEYS).where(exists().where(_known(scope))))).rowcount
        result.repeated += known - changed
    result.confirmed += confirmed_rows
    result.cancelled += len(cancelled)
    _raise(session, scope, result, [
        _exception("preliminary_cancelled", row.id, row.paid_on, row.amount, row.slip_number, row.payment_id,
                   {"reason": "the store voided a payment it had reported (速報取消); the payment is "
                              "cancelled and its receipt reversed"}) for row in cancelled])
    return new


_LINE_COLUMNS = ["agency_report_id", "kind", "municipality_id", "line"]


def _update_known(session: Session, scope: ImportScope, kind: str, values: dict[str, Any] | None = None,
                  returning: tuple[Column[Any], ...] = ()) -> Sequence[Any]:
    """Give the known rows without an import id of `kind` this import's (and `values`) from their records.

    Returns the `returning` columns of each row changed or, with none asked, one row: how many.
    On PostgreSQL each record that changed a row keeps its line in the same statement: the
    UPDATE's RETURNING feeds the INSERT of the lines, so the file is joined with the reports
    once. A record the file holds twice updates from its first (`KEYS.first_of_key`): its values
    and its line, on either database; the others are repeats.
    SQLite, which cannot return the stage's columns, inserts them after (`_keep_lines_of_known`).
    """
    statement = (update(_reports).where(_known(scope), KEYS.c.kind == kind, KEYS.c.first_of_key,
                                        _reports.c[f"{kind}_import_id"].is_(None))
                 .values({f"{kind}_import_id": scope.import_id, **(values or {})}))
    if session.get_bind().dialect.name != "postgresql":
        if returning:
            return session.execute(statement.returning(*returning)).all()
        return [(cast(CursorResult[Any], session.execute(statement)).rowcount,)]
    changed = statement.returning(_reports.c.id.label("report_id"), _reports.c.municipality_id.label("ward"),
                                  KEYS.c.line.label("received"), *returning).cte(f"changed_{kind}")
    kept = insert(_lines).from_select(_LINE_COLUMNS, select(
        changed.c.report_id, literal(kind, String), changed.c.ward, changed.c.received,
    ).where(changed.c.received.is_not(None))).cte(f"kept_{kind}")
    read = select(*(changed.c[c.name] for c in returning)) if returning else select(func.count())
    return session.execute(read.select_from(changed).add_cte(kept)).all()


def _keep_lines_of_known(session: Session, scope: ImportScope) -> None:
    """SQLite: insert the line of each record that set its kind's import id on a known row, in one statement.

    A record the file holds twice keeps the line of its first, the one the row was updated from.
    """
    applied = or_(*(and_(KEYS.c.kind == kind, _reports.c[f"{kind}_import_id"] == scope.import_id)
                    for kind in ("preliminary", "final", "cancel")))
    lines = (select(_reports.c.id, KEYS.c.kind, _reports.c.municipality_id, KEYS.c.line)
             .select_from(KEYS).join(_reports, _known(scope)).where(applied, KEYS.c.first_of_key,
                                                                    KEYS.c.line.is_not(None))
             .order_by(KEYS.c.seq))
    session.execute(sqlite.insert(_lines).from_select(_LINE_COLUMNS, lines).on_conflict_do_nothing())


def _exception(kind: str, report_id: int, business_date: date, amount: int, slip_number: str,
               payment_id: int | None, details: dict[str, Any]) -> dict[str, Any]:
    return dict(kind=kind, subject_key=f"agency_report:{report_id}", business_date=business_date, amount=amount,
                slip_number=slip_number, payment_id=payment_id, agency_report_id=report_id, details=details)


def _raise(session: Session, scope: ImportScope, result: AgencyImportResult,
           exceptions: Iterable[dict[str, Any]]) -> None:
    """Record exceptions once each: (kind, subject) is unique, a repeat is dropped by the database."""
    raised = raise_exceptions(session, scope.municipality_id, list(exceptions))
    result.exceptions.update(raised)



def _add(result: AgencyImportResult, new: NewPayments) -> None:
    result.repeated += new.repeated
    result.booked += new.booked
    result.confirmed += new.confirmed
    result.cancelled += new.cancelled
    result.exceptions.update(new.exceptions)
