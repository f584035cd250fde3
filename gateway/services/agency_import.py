"""Apply a collection agency's file: 速報 books the payment, 確報 confirms it, 取消 asks a person.

The whole file is validated first (the adapter reads it in full: record lengths, kinds and
order, trailer count and total, barcodes, dates) and applied in one transaction. The same
bytes twice are one import (SHA-256); a record an agency repeats in a later file finds
its store payment (`AgencyReport.match_key`) and changes nothing. What cannot be booked
cleanly is booked as far as it can be, never dropped, and raised as an exception of the
contract's kind for a person.

Bulk by design (a file of a million records): the records are staged in a temporary
table (COPY on PostgreSQL); 確報 and 取消 of known payments are one UPDATE each; only
records of payments not seen before are decided one by one in Python (`_decide`). On
PostgreSQL those are read as one stream (the stage joined with slips), their decisions
COPYed into a temporary table with ids reserved from the sequences (their bookings staged
by `stage_bookings`), and the payments and reports written from it at the end, one
statement per table, then the bookings (`record_staged_bookings`: paid slips, refunds,
exceptions).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from psycopg.rows import namedtuple_row
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    CursorResult,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    exists,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.agency import AgencyAdapter, AgencyFile, AgencyFileRejected, AgencyReport, paused_gc
from domain.barcode import BarcodeError, decode
from domain.booking import Booking, Flag, Instalment, decide
from gateway.db import UTCDateTime, transaction, utcnow
from gateway.errors import AgencyFileInvalid
from gateway.models import (
    AgencyImport,
    Assessment,
    Payment,
    Slip,
    table,
)
from gateway.models import AgencyReport as ReportRow
from gateway.progress import NoProgress, Progress
from gateway.services.booking import Booked, record_bookings, record_staged_bookings, stage_bookings
from gateway.services.events import record_event
from gateway.services.exceptions import raise_exceptions
from gateway.services.reference import get_municipality

TOKYO = ZoneInfo("Asia/Tokyo")


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


_stage_metadata = MetaData()
STAGE = Table(
    "agency_stage", _stage_metadata,
    Column("seq", Integer, primary_key=True),
    Column("record", Integer), Column("kind", String(12)), Column("match_key", String(32)),
    Column("barcode", String(44)), Column("slip_number", String(16)), Column("reissue", Integer),
    Column("amount", BigInteger), Column("paid_at", UTCDateTime), Column("paid_on", Date),
    Column("store_code", String(10)), Column("chain_code", String(6)), Column("channel", String(40)),
    Column("remittance_on", Date),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
# Every record's key: what the records of payments seen before need (a 確報 of a million of them
# stages four columns, not fourteen). Only the records of new payments go on to STAGE.
KEYS = Table(
    "agency_keys", _stage_metadata,
    Column("seq", Integer), Column("kind", String(12)), Column("match_key", String(32)),
    Column("remittance_on", Date),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
# The new store payments are read in this order.
STAGE_ORDER_INDEX = "CREATE INDEX ix_agency_stage_order ON agency_stage (paid_at, match_key)"
_reports, _payments, _slips, _assessments = table(ReportRow), table(Payment), table(Slip), table(Assessment)
NEW_CHUNK = 20_000  # new store payments decided and written at a time
# The import's joins of the staged file with the reports fit in memory at a million records
# (about 80 MB); with the default 4 MB they spilled to disk in 16 batches: twice the time.
IMPORT_WORK_MEM = "256MB"


def import_agency_file(session: Session, agency: AgencyAdapter, data: bytes, *, municipality_code: str,
                       filename: str, source: str, actor: str, progress: Progress | None = None,
                       workers: int | None = None) -> AgencyImportResult:
    """Validate `data` in full, then apply it atomically; the same file or record twice applies once.

    A large file is read by `workers` processes (default: one per core this process may use).

    Raises AgencyFileInvalid (every error with its record and field; nothing applied).
    """
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
        reports, progress = agency_file.reports, progress or NoProgress()
        del agency_file  # its records go once staged: their memory is reused by the booking
        _stage_keys(session, reports, progress)
        scope = _Scope(municipality_id, client_code, agency.name, import_id)
        if _apply_to_known(session, scope, result):
            new = session.scalars(select(KEYS.c.seq).order_by(KEYS.c.seq)).all()
            if new:
                _stage(session, [(seq, reports[seq]) for seq in new])
                reports.clear()  # the adapter's list, read by nothing after this
                _apply_new(session, scope, result, len(new), progress)
        session.execute(update(AgencyImport).where(AgencyImport.id == import_id)
                        .values(new_records=result.records - result.repeated))
        record_event(session, "agency.imported", "agency_import", import_id, municipality_id=municipality_id,
                     actor=actor, data={"adapter": agency.name, "records": result.records,
                                        "total": result.total_amount, "repeated": result.repeated,
                                        "booked": result.booked, "confirmed": result.confirmed,
                                        "cancelled": result.cancelled, "exceptions": dict(result.exceptions)})
        _drop_stage(session)
    return result


@dataclass(frozen=True)
class _Scope:
    municipality_id: int
    client_code: str
    adapter: str
    import_id: int


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


def _stage_keys(session: Session, reports: list[AgencyReport], progress: Progress) -> None:
    """Put every record's key in a temporary table (COPY on PostgreSQL, executemany on SQLite)."""
    _drop_stage(session)
    KEYS.create(session.connection())
    progress.start("staging the records", len(reports))
    for start in range(0, len(reports), STAGE_CHUNK):
        chunk = list(enumerate(reports[start:start + STAGE_CHUNK], start=start))
        _copy(session, KEYS, chunk, _keys_row, _keys_line)
        progress.advance(len(chunk))
    _analyze(session, KEYS)
    progress.finish()


def _stage(session: Session, records: list[tuple[int, AgencyReport]]) -> None:
    """Put the records of payments not seen before in full in a temporary table, indexed for reading in order."""
    STAGE.create(session.connection())
    for start in range(0, len(records), STAGE_CHUNK):
        _copy(session, STAGE, records[start:start + STAGE_CHUNK], _stage_row, _copy_line)
    session.connection().exec_driver_sql(STAGE_ORDER_INDEX)
    _analyze(session, STAGE)


def _copy(session: Session, stage: Table, records: list[tuple[int, AgencyReport]],
          row: Callable[[int, AgencyReport], tuple[Any, ...]], line: Callable[[int, AgencyReport], str]) -> None:
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        assert driver is not None
        columns = ", ".join(c.name for c in stage.columns)
        with driver.cursor().copy(f"COPY {stage.name} ({columns}) FROM STDIN") as copy:
            copy.write("".join([line(seq, report) for seq, report in records]))
    else:
        names = [c.name for c in stage.columns]
        connection.execute(insert(stage), [dict(zip(names, row(seq, report), strict=True))
                                           for seq, report in records])


def _analyze(session: Session, stage: Table) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(f"ANALYZE {stage.name}")  # temporary tables get no autovacuum


def _keys_row(seq: int, report: AgencyReport) -> tuple[Any, ...]:
    return (seq, report.kind, report.match_key, report.remittance_on)


def _keys_line(seq: int, report: AgencyReport) -> str:
    remittance = "\\N" if report.remittance_on is None else report.remittance_on.isoformat()
    return f"{seq}\t{report.kind}\t{report.match_key}\t{remittance}\n"


STAGE_CHUNK = 50_000


def _stage_row(seq: int, report: AgencyReport) -> tuple[Any, ...]:
    paid_at = datetime.combine(report.paid_on, report.paid_time, tzinfo=TOKYO)
    return (seq, report.record, report.kind, report.match_key, report.barcode, report.barcode[13:29],
            int(report.barcode[29]), report.amount, paid_at, report.paid_on, report.store_code, report.chain_code,
            report.channel, report.remittance_on)


def _copy_line(seq: int, report: AgencyReport) -> str:
    """`_stage_row` in COPY's text format (the store's time is Japan's: +09:00, no summer time)."""
    remittance = "\\N" if report.remittance_on is None else report.remittance_on.isoformat()
    day = report.paid_on.isoformat()
    return (f"{seq}\t{report.record}\t{report.kind}\t{report.match_key}\t{report.barcode}\t{report.barcode[13:29]}\t"
            f"{report.barcode[29]}\t{report.amount}\t{day} {report.paid_time.isoformat()}+09:00\t{day}\t"
            f"{_copy_text(report.store_code)}\t{_copy_text(report.chain_code)}\t{_copy_text(report.channel)}\t"
            f"{remittance}\n")


def _copy_text(value: str) -> str:
    if value.isprintable() and "\\" not in value:
        return value
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _drop_stage(session: Session) -> None:
    DECISIONS.drop(session.connection(), checkfirst=True)
    STAGE.drop(session.connection(), checkfirst=True)
    KEYS.drop(session.connection(), checkfirst=True)


def _known(scope: _Scope) -> Any:
    return and_(_reports.c.municipality_id == scope.municipality_id, _reports.c.adapter == scope.adapter,
                _reports.c.match_key == KEYS.c.match_key)


def _apply_to_known(session: Session, scope: _Scope, result: AgencyImportResult) -> bool:
    """確報 and 取消 of store payments reported before: one UPDATE each; repeats change nothing.

    Returns whether records of payments not seen before may remain; the records of known
    payments then leave the stage, so what stays is new. A record whose
    UPDATE found its column already set (an earlier file's), or that the file holds twice, is
    a repeat: the known records less the ones that changed a row.
    """
    confirmed = session.execute(update(_reports).where(_known(scope), KEYS.c.kind == "final",
                                                       _reports.c.final_import_id.is_(None))
                                .values(final_import_id=scope.import_id, remittance_on=KEYS.c.remittance_on))
    confirmed_rows = cast(CursorResult[Any], confirmed).rowcount
    preliminary = session.execute(update(_reports).where(_known(scope), KEYS.c.kind == "preliminary",
                                                         _reports.c.preliminary_import_id.is_(None))
                                  .values(preliminary_import_id=scope.import_id))
    cancelled = session.execute(update(_reports).where(_known(scope), KEYS.c.kind == "cancel",
                                                       _reports.c.cancel_import_id.is_(None))
                                .values(cancel_import_id=scope.import_id)
                                .returning(_reports.c.id, _reports.c.slip_number, _reports.c.amount,
                                           _reports.c.paid_on, _reports.c.payment_id)).all()
    changed = confirmed_rows + cast(CursorResult[Any], preliminary).rowcount + len(cancelled)
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
                   {"reason": "the store voided a payment it had reported (速報取消); the booking stands "
                              "until a person decides"}) for row in cancelled])
    return new


@dataclass
class _NewReport:
    """A store payment this file is the first to report, with every record of it in the file."""

    first: Any  # the first staged row
    kinds: set[str] = field(default_factory=set)
    remittance_on: date | None = None


def _apply_new(session: Session, scope: _Scope, result: AgencyImportResult, records: int,
               progress: Progress) -> None:
    """Decide each store payment not seen before, oldest first: book it, and raise what a person must see.

    In chunks of about NEW_CHUNK payments, each whole (every record of a payment in one chunk),
    so memory stays flat however large the file; what a chunk booked is in `booked` for the
    next. SQLite writes each chunk as it is decided; PostgreSQL COPYs the decisions and writes
    them all at the end, one statement per table (a statement per chunk would join the
    whole stage again each time).
    """
    progress.start("booking new payments", records)
    booked: set[int] = set()  # instalments this import has booked so far
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        DECISIONS.create(session.connection())
    for rows, slips in (_streamed_chunks if postgres else _keyset_chunks)(session, scope):
        _apply_chunk(session, scope, result, rows, slips, booked)
        progress.advance(len(rows))
    if postgres:
        _write_decided(session, scope, result, progress)
    progress.finish()


# The staged new records, oldest first, each with the slip its barcode names (one hash join
# over the whole stage, streamed through a server-side cursor: no IN lists, one plan).
_STREAM = """
    SELECT st.seq, st.record, st.kind, st.match_key, st.barcode, st.slip_number, st.reissue, st.amount,
           st.paid_at, st.paid_on, st.remittance_on, s.id AS slip_id, s.status AS slip_status,
           s.amount AS slip_amount, s.assessment_id, s.due_date, s.store_deadline, a.amount AS billed
    FROM agency_stage st
    LEFT JOIN slips s ON s.municipality_id = %(municipality_id)s AND s.number = st.slip_number
                     AND s.reissue = st.reissue
    LEFT JOIN assessments a ON a.id = s.assessment_id
    ORDER BY st.paid_at, st.match_key, st.seq
"""
_Chunks = Iterator[tuple[Sequence[Any], dict[tuple[str, int], dict[str, Any]]]]


def _streamed_chunks(session: Session, scope: _Scope) -> _Chunks:
    """PostgreSQL: the stage joined with slips in one query, read NEW_CHUNK rows at a time."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor(name="agency_new", row_factory=namedtuple_row) as cursor:
        cursor.itersize = NEW_CHUNK
        cursor.execute(_STREAM, {"municipality_id": scope.municipality_id})
        carry: list[Any] = []
        while fetched := cursor.fetchmany(NEW_CHUNK):
            rows, carry = _whole_payments(carry + fetched)
            if rows:
                yield rows, _slips_in(rows)
        if carry:
            yield carry, _slips_in(carry)


def _whole_payments(rows: list[Any]) -> tuple[list[Any], list[Any]]:
    """Split off the trailing records of the last payment: the next fetch may hold more of them."""
    cut = len(rows)
    while cut and rows[cut - 1].match_key == rows[-1].match_key:
        cut -= 1
    return rows[:cut], rows[cut:]


def _slips_in(rows: Sequence[Any]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r.slip_number, r.reissue): dict(id=r.slip_id, number=r.slip_number, reissue=r.reissue,
                                              status=r.slip_status, amount=r.slip_amount,
                                              assessment_id=r.assessment_id, due_date=r.due_date,
                                              store_deadline=r.store_deadline, billed=r.billed)
            for r in rows if r.slip_id is not None}


def _keyset_chunks(session: Session, scope: _Scope) -> _Chunks:
    """SQLite: NEW_CHUNK staged records at a time (keyset over store time and match key), their slips looked up."""
    order = (STAGE.c.paid_at, STAGE.c.match_key, STAGE.c.seq)
    last: tuple[Any, str] | None = None
    while True:
        query = select(STAGE).order_by(*order).limit(NEW_CHUNK)
        if last is not None:
            query = query.where(tuple_(STAGE.c.paid_at, STAGE.c.match_key) > tuple_(*last))
        rows = session.execute(query).all()
        if not rows:
            return
        if len(rows) == NEW_CHUNK:  # the last payment may go on in the next chunk: leave it whole for it
            rows = _whole_payments(list(rows))[0] or rows
        last = (rows[-1].paid_at, rows[-1].match_key)
        yield rows, _slips_of(session, scope, {r.slip_number for r in rows})


def _apply_chunk(session: Session, scope: _Scope, result: AgencyImportResult, rows: Sequence[Any],
                 slips: dict[tuple[str, int], dict[str, Any]], booked: set[int]) -> None:
    news: dict[str, _NewReport] = {}
    for row in rows:
        new = news.setdefault(row.match_key, _NewReport(row))
        if row.kind in new.kinds:
            result.repeated += 1  # the same record twice in one file
        new.kinds.add(row.kind)
        if row.kind == "final":
            new.remittance_on = row.remittance_on
    booked |= _lock_and_read_booked(session, {s["assessment_id"] for s in slips.values()})
    decisions = [_decide(scope, new, slips, booked) for new in news.values()]
    if session.get_bind().dialect.name == "postgresql":
        _copy_decisions(session, decisions, result)
    else:
        _write(session, scope, decisions, result)


def _slips_of(session: Session, scope: _Scope, numbers: set[str]) -> dict[tuple[str, int], dict[str, Any]]:
    found: dict[tuple[str, int], dict[str, Any]] = {}
    ordered = sorted(numbers)
    for start in range(0, len(ordered), 5_000):
        chunk = ordered[start:start + 5_000]
        for row in session.execute(select(_slips.c.id, _slips.c.number, _slips.c.reissue, _slips.c.status,
                                          _slips.c.amount, _slips.c.assessment_id, _slips.c.due_date,
                                          _slips.c.store_deadline, _assessments.c.amount.label("billed"))
                                   .join(_assessments, _assessments.c.id == _slips.c.assessment_id)
                                   .where(_slips.c.municipality_id == scope.municipality_id,
                                          _slips.c.number.in_(chunk))).mappings():
            found[(row["number"], row["reissue"])] = dict(row)
    return found


def _lock_and_read_booked(session: Session, assessment_ids: set[int]) -> set[int]:
    """Lock the instalments (payments of them queue behind this import) and return those already paid."""
    booked: set[int] = set()
    ordered = sorted(assessment_ids)
    if session.get_bind().dialect.name == "postgresql":  # one array parameter, however many
        session.execute(text("SELECT id FROM assessments WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"),
                        {"ids": ordered}).all()
        booked.update(session.scalars(text("SELECT assessment_id FROM payments WHERE assessment_id = ANY(:ids) "
                                           "AND applied"), {"ids": ordered}))
        return booked
    for start in range(0, len(ordered), 5_000):
        chunk = ordered[start:start + 5_000]
        session.execute(select(Assessment.id).where(Assessment.id.in_(chunk)).order_by(Assessment.id)
                        .with_for_update()).all()
        booked.update(session.scalars(select(_payments.c.assessment_id)
                                      .where(_payments.c.assessment_id.in_(chunk), _payments.c.applied)))
    return booked


@dataclass
class _Decision:
    """A new store payment as booked, and the exceptions its agency records raise besides the booking's."""

    new: _NewReport
    slip: dict[str, Any] | None
    booking: Booking
    exceptions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _decide(scope: _Scope, new: _NewReport, slips: dict[tuple[str, int], dict[str, Any]],
            booked: set[int]) -> _Decision:
    """What to book for one new store payment (`decide`), and what the agency's records raise besides."""
    row = new.first
    slip, unknown = _slip_of(scope, row, slips)
    instalment = None if slip is None else Instalment(
        billed=slip["billed"], due_date=slip["due_date"], store_deadline=slip["store_deadline"],
        slip_void=slip["status"] == "void", booked=slip["assessment_id"] in booked)
    booking = decide(row.amount, row.paid_on, instalment, unknown_reason=unknown)
    if booking.applied and slip is not None:
        booked.add(slip["assessment_id"])  # a later payment of it in this file is a double payment
    decision = _Decision(new, slip, booking)
    if "final" in new.kinds and "preliminary" not in new.kinds:
        decision.exceptions.append(("final_without_preliminary", {"reason": "a 確報 came before any 速報; "
                                                                            "booked from the 確報"}))
    if "cancel" in new.kinds:
        decision.exceptions.append(("preliminary_cancelled", {"reason": "the store voided a payment it had "
                                                                        "reported (速報取消)"}))
    return decision


def _slip_of(scope: _Scope, row: Any, slips: dict[tuple[str, int], dict[str, Any]]) -> tuple[dict[str, Any] | None,
                                                                                          str]:
    """The slip a record's barcode names, or None and why it is unknown."""
    try:
        barcode = decode(row.barcode)
    except BarcodeError as exc:
        return None, str(exc)
    if barcode.client_code != scope.client_code:
        return None, f"barcode of client {barcode.client_code}, not this municipality's {scope.client_code}"
    slip = slips.get((row.slip_number, row.reissue))
    return slip, "" if slip is not None else f"no slip {row.slip_number} issue {row.reissue}"


def _write(session: Session, scope: _Scope, decisions: list[_Decision], result: AgencyImportResult) -> None:
    """Insert payments and the reports pointing at them, then record the bookings (`record_bookings`)."""
    now = utcnow()
    to_pay = [d for d in decisions if d.slip is not None]
    payment_ids: dict[int, int] = {}
    if to_pay:
        ids = session.execute(insert(_payments).returning(_payments.c.id, sort_by_parameter_order=True), [dict(
            municipality_id=scope.municipality_id, slip_id=d.slip["id"], assessment_id=d.slip["assessment_id"],
            channel="agency", status="succeeded", amount=d.new.first.amount, fee_amount=0, refunded_amount=0,
            applied=d.booking.applied, overpaid=d.booking.overpaid, accepted_at=d.new.first.paid_at, created_at=now,
            updated_at=now) for d in to_pay if d.slip is not None]).scalars().all()
        payment_ids = {id(d): pid for d, pid in zip(to_pay, ids, strict=True)}
    report_ids = session.execute(insert(_reports).returning(_reports.c.id, sort_by_parameter_order=True), [
        _report_values(scope, d, payment_ids.get(id(d)), now) for d in decisions]).scalars().all()
    booked = [_booked(d, payment_ids.get(id(d)), report_id) for d, report_id in zip(decisions, report_ids, strict=True)]
    result.exceptions.update(record_bookings(session, scope.municipality_id, booked, now=now))
    result.booked += sum(1 for d in to_pay if d.booking.applied)
    result.confirmed += sum(1 for d in decisions if "final" in d.new.kinds)
    result.cancelled += sum(1 for d in decisions if "cancel" in d.new.kinds)


def _booked(decision: _Decision, payment_id: int | None, report_id: int) -> Booked:
    """The booking of a record's payment; its exceptions are raised on the report."""
    row = decision.new.first
    return Booked(decision.booking, payment_id, None if decision.slip is None else decision.slip["assessment_id"],
                  row.amount, row.paid_on, row.slip_number, f"agency_report:{report_id}", agency_report_id=report_id,
                  also=tuple(Flag(kind, details) for kind, details in decision.exceptions))


# What Python decided for each new payment, by its first staged record; the rows themselves
# are then written from the stage in SQL (PostgreSQL).
DECISIONS = Table(
    "agency_decisions", _stage_metadata,
    Column("seq", Integer), Column("report_id", Integer), Column("payment_id", Integer),
    Column("slip_id", Integer), Column("assessment_id", Integer), Column("applied", Boolean),
    Column("overpaid", Boolean), Column("preliminary", Boolean), Column("final", Boolean),
    Column("cancel", Boolean), Column("remittance_on", Date),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
_FROM_DECISIONS = "FROM agency_decisions d JOIN agency_stage st ON st.seq = d.seq"
_WRITE_DECIDED = (
    f"""INSERT INTO payments (id, municipality_id, slip_id, assessment_id, channel, status, amount, fee_amount,
                              refunded_amount, applied, overpaid, accepted_at, created_at, updated_at)
        SELECT d.payment_id, %(municipality_id)s, d.slip_id, d.assessment_id, 'agency', 'succeeded', st.amount, 0,
               0, d.applied, d.overpaid, st.paid_at, %(now)s, %(now)s
        {_FROM_DECISIONS} WHERE d.payment_id IS NOT NULL""",
    f"""INSERT INTO agency_reports (id, municipality_id, adapter, match_key, barcode, slip_number, reissue, amount,
                                    paid_at, paid_on, store_code, chain_code, channel, preliminary_import_id,
                                    final_import_id, cancel_import_id, remittance_on, payment_id, created_at)
        SELECT d.report_id, %(municipality_id)s, %(adapter)s, st.match_key, st.barcode, st.slip_number, st.reissue,
               st.amount, st.paid_at, st.paid_on, st.store_code, st.chain_code, st.channel,
               CASE WHEN d.preliminary THEN %(import_id)s END, CASE WHEN d.final THEN %(import_id)s END,
               CASE WHEN d.cancel THEN %(import_id)s END, d.remittance_on, d.payment_id, %(now)s
        {_FROM_DECISIONS}""",
)


def _copy_decisions(session: Session, decisions: list[_Decision], result: AgencyImportResult) -> None:
    """PostgreSQL, per chunk: ids reserved, the decisions and their bookings COPYed (`_write_decided` writes)."""
    to_pay = [d for d in decisions if d.slip is not None]
    report_ids, payment_ids = _reserve(session, "agency_reports", len(decisions)), _reserve(session, "payments",
                                                                                           len(to_pay))
    paid = {id(d): pid for d, pid in zip(to_pay, payment_ids, strict=True)}
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor().copy("COPY agency_decisions FROM STDIN") as copy:
        for d, report_id in zip(decisions, report_ids, strict=True):
            slip, kinds = d.slip or {}, d.new.kinds
            copy.write_row((d.new.first.seq, report_id, paid.get(id(d)), slip.get("id"), slip.get("assessment_id"),
                            d.booking.applied, d.booking.overpaid, "preliminary" in kinds, "final" in kinds,
                            "cancel" in kinds,
                            d.new.remittance_on))
    result.booked += sum(1 for d in to_pay if d.booking.applied)
    result.confirmed += sum(1 for d in decisions if "final" in d.new.kinds)
    result.cancelled += sum(1 for d in decisions if "cancel" in d.new.kinds)
    stage_bookings(session, [_booked(d, paid.get(id(d)), report_id)
                             for d, report_id in zip(decisions, report_ids, strict=True)])


def _write_decided(session: Session, scope: _Scope, result: AgencyImportResult, progress: Progress) -> None:
    """PostgreSQL: every decided payment and report, one statement each; then their staged bookings."""
    progress.start("writing the new payments", len(_WRITE_DECIDED) + 1)
    connection = session.connection()
    connection.exec_driver_sql("ANALYZE agency_decisions")  # one hash join each over the whole file
    now = utcnow()
    parameters = {"municipality_id": scope.municipality_id, "adapter": scope.adapter,
                  "import_id": scope.import_id, "now": now}
    for statement in _WRITE_DECIDED:
        connection.exec_driver_sql(statement, parameters)
        progress.advance(1)
    result.exceptions.update(record_staged_bookings(session, scope.municipality_id, now=now))
    progress.advance(1)


def _reserve(session: Session, table_name: str, count: int) -> list[int]:
    """`count` ids from the table's sequence in one statement (rows then COPYed or inserted with them)."""
    if not count:
        return []
    return list(session.scalars(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                                     "FROM generate_series(1, :count)"), {"table": table_name, "count": count}))


def _report_values(scope: _Scope, decision: _Decision, payment_id: int | None, now: datetime) -> dict[str, Any]:
    row, kinds = decision.new.first, decision.new.kinds
    return dict(
        municipality_id=scope.municipality_id, adapter=scope.adapter, match_key=row.match_key, barcode=row.barcode,
        slip_number=row.slip_number, reissue=row.reissue, amount=row.amount, paid_at=row.paid_at,
        paid_on=row.paid_on, store_code=row.store_code, chain_code=row.chain_code, channel=row.channel,
        preliminary_import_id=scope.import_id if "preliminary" in kinds else None,
        final_import_id=scope.import_id if "final" in kinds else None,
        cancel_import_id=scope.import_id if "cancel" in kinds else None,
        remittance_on=decision.new.remittance_on, payment_id=payment_id, created_at=now)


def _exception(kind: str, report_id: int, business_date: date, amount: int, slip_number: str,
               payment_id: int | None, details: dict[str, Any]) -> dict[str, Any]:
    return dict(kind=kind, subject_key=f"agency_report:{report_id}", business_date=business_date, amount=amount,
                slip_number=slip_number, payment_id=payment_id, agency_report_id=report_id, details=details)


def _raise(session: Session, scope: _Scope, result: AgencyImportResult, exceptions: Iterable[dict[str, Any]]) -> None:
    """Record exceptions once each: (kind, subject) is unique, a repeat is dropped by the database."""
    raised = raise_exceptions(session, scope.municipality_id, list(exceptions))
    result.exceptions.update(raised)
