"""Book the store payments an agency file is the first to report: read, decide, write.

Each payment not seen before is decided in Python by the one booking rule
(`domain.booking.decide`) in chunks of about NEW_CHUNK, oldest first. SQLite writes each
chunk as it is decided (`record_bookings`). PostgreSQL reads the staged records as one
stream (the stage joined with slips and their instalments), COPYs each chunk's decisions
with ids reserved from the sequences and stages their bookings (`stage_bookings`), then
writes the payments, reports and the reports' lines as received at the end, one statement
per table, and the bookings after them (`record_staged_bookings`: paid slips, refunds, exceptions).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import any_, bindparam, insert, select, text, tuple_
from sqlalchemy.orm import Session

from domain.barcode import BarcodeError, decode
from domain.booking import Booking, Flag, Instalment, decide
from gateway.db import utcnow
from gateway.models import AgencyReport as ReportRow
from gateway.models import AgencyReportLine, Assessment, Payment, Slip, table
from gateway.models.base import on_ward
from gateway.progress import Progress
from gateway.services.agency_stage import DECISIONS, STAGE
from gateway.services.booking import Booked, record_bookings, record_staged_bookings, stage_bookings

_reports, _payments, _slips, _assessments = table(ReportRow), table(Payment), table(Slip), table(Assessment)
_lines = table(AgencyReportLine)
NEW_CHUNK = 20_000  # new store payments decided and written at a time


@dataclass(frozen=True)
class ImportScope:
    """Whose file, through which agency, in which import."""

    municipality_id: int
    client_code: str
    adapter: str
    import_id: int


@dataclass
class NewPayments:
    """What booking the new payments did, counted (added to the import's result)."""

    repeated: int = 0  # records the file holds twice
    booked: int = 0
    confirmed: int = 0
    cancelled: int = 0
    exceptions: Counter[str] = field(default_factory=Counter)



@dataclass
class _NewReport:
    """A store payment this file is the first to report, with every record of it in the file."""

    first: Any  # the first staged row
    kinds: dict[str, Any] = field(default_factory=dict)  # each kind of record it has in the file: its first row
    remittance_on: date | None = None


def apply_new_payments(session: Session, scope: ImportScope, records: int, progress: Progress) -> NewPayments:
    """Decide each store payment not seen before, oldest first: book it, and raise what a person must see.

    In chunks of about NEW_CHUNK payments, each whole (every record of a payment in one chunk),
    so memory stays flat however large the file; what a chunk booked is in `booked` for the
    next. SQLite writes each chunk as it is decided; PostgreSQL COPYs the decisions and writes
    them all at the end, one statement per table (a statement per chunk would join the
    whole stage again each time).
    """
    result = NewPayments()
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
    return result


# The staged new records, oldest first, each with the slip its barcode names (one hash join
# over the whole stage, streamed through a server-side cursor: no IN lists, one plan).
_STREAM = """
    SELECT st.seq, st.record, st.kind, st.match_key, st.barcode, st.slip_number, st.reissue, st.amount,
           st.paid_at, st.paid_on, st.remittance_on, s.id AS slip_id, s.status AS slip_status,
           s.amount AS slip_amount, s.assessment_id, s.due_date, s.store_deadline, a.amount AS billed,
           a.closed_reason
    FROM agency_stage st
    LEFT JOIN slips s ON s.municipality_id = %(municipality_id)s AND s.number = st.slip_number
                     AND s.reissue = st.reissue
    LEFT JOIN assessments a ON a.municipality_id = s.municipality_id AND a.id = s.assessment_id
    ORDER BY st.paid_at, st.match_key, st.seq
"""
_Chunks = Iterator[tuple[Sequence[Any], dict[tuple[str, int], dict[str, Any]]]]


def _streamed_chunks(session: Session, scope: ImportScope) -> _Chunks:
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
                                              store_deadline=r.store_deadline, billed=r.billed,
                                              closed_reason=r.closed_reason)
            for r in rows if r.slip_id is not None}


def _keyset_chunks(session: Session, scope: ImportScope) -> _Chunks:
    """SQLite: NEW_CHUNK staged records at a time (keyset over store time and match key), their slips looked up."""
    order = (STAGE.c.paid_at, STAGE.c.match_key, STAGE.c.seq)
    last: tuple[Any, str] | None = None
    while True:
        query = select(STAGE).order_by(*order).limit(NEW_CHUNK)
        if last is not None:
            query = query.where(tuple_(STAGE.c.paid_at, STAGE.c.match_key) > tuple_(*last))
        rows: Sequence[Any] = session.execute(query).all()
        if not rows:
            return
        if len(rows) == NEW_CHUNK:  # the last payment may go on in the next chunk: leave it whole for it
            whole, rest = _whole_payments(list(rows))
            # one payment filling the chunk: the rest of its records are read now, or the keyset would pass them
            rows = whole or [*rest, *session.execute(select(STAGE).where(
                STAGE.c.paid_at == rest[0].paid_at, STAGE.c.match_key == rest[0].match_key,
                STAGE.c.seq > rest[-1].seq).order_by(STAGE.c.seq))]
        last = (rows[-1].paid_at, rows[-1].match_key)
        yield rows, _slips_of(session, scope, {r.slip_number for r in rows})


def _apply_chunk(session: Session, scope: ImportScope, result: NewPayments, rows: Sequence[Any],
                 slips: dict[tuple[str, int], dict[str, Any]], booked: set[int]) -> None:
    news: dict[str, _NewReport] = {}
    for row in rows:
        new = news.setdefault(row.match_key, _NewReport(row))
        if row.kind in new.kinds:
            result.repeated += 1  # the same record twice in one file: its first copy counts
            continue
        new.kinds[row.kind] = row
        if row.kind == "final":
            new.remittance_on = row.remittance_on
    booked |= _lock_and_read_booked(session, scope.municipality_id, {s["assessment_id"] for s in slips.values()})
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # the stream's snapshot is older than the lock (SQLite's import holds the write lock throughout)
        _reread_instalments(session, scope.municipality_id, slips)
    decisions = [_decide(scope, new, slips, booked) for new in news.values()]
    if postgres:
        _copy_decisions(session, decisions, result)
    else:
        _write(session, scope, decisions, result)


# What `_decide` needs of a slip and its instalment (the PostgreSQL stream reads the same in its join).
_READ_SLIPS = (select(_slips.c.id, _slips.c.number, _slips.c.reissue, _slips.c.status, _slips.c.amount,
                      _slips.c.assessment_id, _slips.c.due_date, _slips.c.store_deadline,
                      _assessments.c.amount.label("billed"), _assessments.c.closed_reason)
               .join(_assessments, on_ward(_slips, "assessment_id", _assessments)))


def _slips_of(session: Session, scope: ImportScope, numbers: set[str]) -> dict[tuple[str, int], dict[str, Any]]:
    found: dict[tuple[str, int], dict[str, Any]] = {}
    ordered = sorted(numbers)
    for start in range(0, len(ordered), 5_000):
        chunk = ordered[start:start + 5_000]
        for row in session.execute(_READ_SLIPS.where(_slips.c.municipality_id == scope.municipality_id,
                                                     _slips.c.number.in_(chunk))).mappings():
            found[(row["number"], row["reissue"])] = dict(row)
    return found


def _reread_instalments(session: Session, municipality_id: int, slips: dict[tuple[str, int], dict[str, Any]]) -> None:
    """PostgreSQL: what `decide` needs of each slip and its instalment, read again after the instalments' lock.

    The stream's snapshot dates from its start: an amendment or a reissue committed since
    (a ledger import, a clerk) must be seen, as a notification sees it.
    """
    by_id = {slip["id"]: slip for slip in slips.values()}
    for row in session.execute(_READ_SLIPS.where(_slips.c.municipality_id == municipality_id,
                                                 _slips.c.id == any_(bindparam("ids"))),
                               {"ids": list(by_id)}).mappings():
        by_id[row["id"]].update(row)


def _lock_and_read_booked(session: Session, municipality_id: int, assessment_ids: set[int]) -> set[int]:
    """Lock the instalments (payments of them queue behind this import) and return those already paid."""
    booked: set[int] = set()
    ordered = sorted(assessment_ids)
    if session.get_bind().dialect.name == "postgresql":  # one array parameter, however many
        session.execute(text("SELECT id FROM assessments WHERE municipality_id = :ward AND id = ANY(:ids) "
                             "ORDER BY id FOR UPDATE"), {"ward": municipality_id, "ids": ordered}).all()
        booked.update(session.scalars(text("SELECT assessment_id FROM payments WHERE municipality_id = :ward "
                                           "AND assessment_id = ANY(:ids) AND applied"),
                                      {"ward": municipality_id, "ids": ordered}))
        return booked
    for start in range(0, len(ordered), 5_000):
        chunk = ordered[start:start + 5_000]
        session.execute(select(Assessment.id).where(Assessment.municipality_id == municipality_id,
                                                    Assessment.id.in_(chunk)).order_by(Assessment.id)
                        .with_for_update()).all()
        booked.update(session.scalars(select(_payments.c.assessment_id)
                                      .where(_payments.c.municipality_id == municipality_id,
                                             _payments.c.assessment_id.in_(chunk), _payments.c.applied)))
    return booked


@dataclass
class _Decision:
    """A new store payment as booked, and the exceptions its agency records raise besides the booking's."""

    new: _NewReport
    slip: dict[str, Any] | None
    booking: Booking
    exceptions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _decide(scope: ImportScope, new: _NewReport, slips: dict[tuple[str, int], dict[str, Any]],
            booked: set[int]) -> _Decision:
    """What to book for one new store payment (`decide`), and what the agency's records raise besides."""
    row = new.first
    slip, unknown = _slip_of(scope, row, slips)
    instalment = None if slip is None else Instalment(
        billed=slip["billed"], due_date=slip["due_date"], store_deadline=slip["store_deadline"],
        slip_void=slip["status"] == "void", closed=slip["closed_reason"], booked=slip["assessment_id"] in booked)
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


def _slip_of(scope: ImportScope, row: Any, slips: dict[tuple[str, int], dict[str, Any]]) -> tuple[dict[str, Any] | None,
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


def _write(session: Session, scope: ImportScope, decisions: list[_Decision], result: NewPayments) -> None:
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
    lines = [dict(agency_report_id=report_id, kind=kind, municipality_id=scope.municipality_id, line=row.line)
             for d, report_id in zip(decisions, report_ids, strict=True)
             for kind, row in d.new.kinds.items() if row.line is not None]
    if lines:
        session.execute(insert(_lines), lines)
    booked = [_booked(d, payment_ids.get(id(d)), report_id) for d, report_id in zip(decisions, report_ids, strict=True)]
    result.exceptions.update(record_bookings(session, scope.municipality_id, booked, now=now))
    result.booked += sum(1 for d in to_pay if d.booking.applied)
    result.confirmed += sum(1 for d in decisions if "final" in d.new.kinds)
    result.cancelled += sum(1 for d in decisions if "cancel" in d.new.kinds)


def _booked(decision: _Decision, payment_id: int | None, report_id: int) -> Booked:
    """The booking of a record's payment; its exceptions are raised on the report."""
    row = decision.new.first
    return Booked(decision.booking, payment_id, None if decision.slip is None else decision.slip["assessment_id"],
                  row.amount, row.paid_on, row.slip_number, f"agency_report:{report_id}", channel="agency",
                  paid_at=row.paid_at, agency_report_id=report_id,
                  also=tuple(Flag(kind, details) for kind, details in decision.exceptions))


_FROM_DECISIONS = "FROM agency_decisions d JOIN agency_stage st ON st.seq = d.seq"
_KINDS = ("preliminary", "final", "cancel")

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
    # Each report's records as received: the staged record of each kind it has (`_copy_decisions`).
    """INSERT INTO agency_report_lines (agency_report_id, kind, municipality_id, line)
        SELECT d.report_id, st.kind, %(municipality_id)s, st.line
        FROM agency_decisions d
        CROSS JOIN LATERAL (VALUES (d.preliminary_seq), (d.final_seq), (d.cancel_seq)) AS k (seq)
        JOIN agency_stage st ON st.seq = k.seq
        WHERE st.line IS NOT NULL""",
)


def _copy_decisions(session: Session, decisions: list[_Decision], result: NewPayments) -> None:
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
                            "cancel" in kinds, d.new.remittance_on,
                            *(kinds[kind].seq if kind in kinds else None for kind in _KINDS)))
    result.booked += sum(1 for d in to_pay if d.booking.applied)
    result.confirmed += sum(1 for d in decisions if "final" in d.new.kinds)
    result.cancelled += sum(1 for d in decisions if "cancel" in d.new.kinds)
    stage_bookings(session, [_booked(d, paid.get(id(d)), report_id)
                             for d, report_id in zip(decisions, report_ids, strict=True)])


def _write_decided(session: Session, scope: ImportScope, result: NewPayments, progress: Progress) -> None:
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


def _report_values(scope: ImportScope, decision: _Decision, payment_id: int | None, now: datetime) -> dict[str, Any]:
    row, kinds = decision.new.first, decision.new.kinds
    return dict(
        municipality_id=scope.municipality_id, adapter=scope.adapter, match_key=row.match_key, barcode=row.barcode,
        slip_number=row.slip_number, reissue=row.reissue, amount=row.amount, paid_at=row.paid_at,
        paid_on=row.paid_on, store_code=row.store_code, chain_code=row.chain_code, channel=row.channel,
        preliminary_import_id=scope.import_id if "preliminary" in kinds else None,
        final_import_id=scope.import_id if "final" in kinds else None,
        cancel_import_id=scope.import_id if "cancel" in kinds else None,
        remittance_on=decision.new.remittance_on, payment_id=payment_id, created_at=now)


