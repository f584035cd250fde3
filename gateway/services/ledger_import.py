"""Import assessments (調定) from the core system: validate the whole file, then apply it atomically.

Set-based, for a ward's million-record file: the file is read in pieces (ledger_file) into a
temporary staging table (COPY on PostgreSQL, executemany on SQLite) inside the import's one
transaction; duplicates, keys already known (through the unique index on municipality, key
and instalment) and changes are found by a few statements over the stage, and applied by a
few more. Any error rolls the whole transaction back: nothing is applied, the stage is gone.
"""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.agency import paused_gc
from domain.layouts import Layout, LineError
from gateway.crypto import DataCipher
from gateway.db import transaction, utcnow
from gateway.errors import GatewayError, LedgerFileRejected
from gateway.layouts import load_layout
from gateway.models import Assessment, AssessmentRevision, FundType, LedgerImport, Municipality, Slip, on_ward, table
from gateway.observability.metrics import observed_import
from gateway.progress import NoProgress, Progress
from gateway.services.events import record_event, record_events
from gateway.services.ledger_file import (
    STAGE_COLUMNS,
    FileCheck,
    Piece,
    References,
    changed_names,
    default_workers,
    envelope_errors,
    read_pieces,
)
from gateway.services.ledger_files import FileOnRecord, WardPart, file_on_record, import_of_ward, record_file

CHUNK = 5_000  # rows read back, or keys in one IN list, at a time
# The import's joins of the staged file with the ledger fit in memory at a million records;
# with the default 4 MB they spill to disk in batches.
IMPORT_WORK_MEM = "256MB"




@dataclass
class ImportResult:
    filename: str
    layout: str
    records: int
    total_amount: int
    created: int = 0
    amended: int = 0
    unchanged: int = 0
    payer_updated: int = 0
    voided_slips: int = 0
    already_imported: bool = False
    amendments: list[str] = field(default_factory=list)


_metadata = MetaData()
STAGE = Table(  # the file's records, one per line; municipality and fund ids None where the line is in error
    "ledger_stage", _metadata,
    Column("line", Integer), Column("municipality_code", String(6)), Column("municipality_id", Integer),
    Column("source_key", String(32)), Column("fund_type_id", Integer), Column("fiscal_year", Integer),
    Column("installment", Integer), Column("payer_ref_hmac", String(64)), Column("payer_name_enc", LargeBinary),
    Column("name_digest", LargeBinary), Column("amount", BigInteger), Column("due_date", Date),
    # Unbounded: a line whose eL番号 or payload is too long is staged, refused, and named with the others.
    Column("late_fee", BigInteger), Column("dunning_fee", BigInteger), Column("el_number", String),
    Column("el_qr", String),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
assert tuple(c.name for c in STAGE.columns) == STAGE_COLUMNS
KNOWN = Table(  # the staged lines whose key the ledger already holds, with what it holds and what changes
    "ledger_known", _metadata,
    Column("line", Integer, primary_key=True), Column("assessment_id", Integer), Column("municipality_id", Integer),
    Column("fund_type_id", Integer), Column("fiscal_year", Integer), Column("amount", BigInteger),
    Column("due_date", Date), Column("late_fee", BigInteger), Column("dunning_fee", BigInteger),
    Column("el_number", String(32)), Column("payer_name_enc", LargeBinary), Column("revision", Integer),
    Column("change", String(8)),  # amended, payer, or None: unchanged
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)

_assessments, _revisions, _slips = table(Assessment), table(AssessmentRevision), table(Slip)


@observed_import("ledger")
def import_ledger(session: Session, cipher: DataCipher, data: bytes, *, filename: str,
                  layout_name: str = "kokin-csv", progress: Progress | None = None,
                  workers: int | None = None) -> ImportResult:
    """Validate every line of `data`, then apply it in one transaction.

    Idempotent: the same bytes again change nothing; a changed amount or due date for a
    known assessment is an amendment that voids its unpaid slip. Raises LedgerFileRejected
    listing every error (line and field) and then nothing has been applied. A large file
    is read by `workers` processes (default: one per core this process may use).
    """
    progress = progress or NoProgress()
    layout = load_layout(layout_name)  # a mistyped layout is an error even for a known file
    if "fund_code" not in {f.name for f in layout.data.fields}:
        raise GatewayError(f"layout {layout.name} holds status changes, not assessments (status_import)",
                           code="not_an_assessments_layout", status=422)
    digest = hashlib.sha256(data).hexdigest()
    previous = file_on_record(session, layout, data, digest)
    if previous is not None:
        return _already_imported(previous)
    try:
        with paused_gc(), transaction(session):
            return _import(session, cipher, layout, data, digest, filename, progress, workers or default_workers())
    except IntegrityError as exc:
        previous = file_on_record(session, layout, data, digest)
        if previous is not None:  # a concurrent import of the same file won
            return _already_imported(previous)
        raise GatewayError("the ledger changed while this file was being imported; import it again",
                           code="ledger_conflict", status=409) from exc
    finally:
        if session.get_bind().dialect.name == "sqlite":
            _forget_stage(session)


def _already_imported(previous: FileOnRecord) -> ImportResult:
    return ImportResult(previous.filename, previous.layout, previous.records, previous.total_amount,
                        unchanged=previous.records, already_imported=True)


def _import(session: Session, cipher: DataCipher, layout: Layout, data: bytes, digest: str, filename: str,
            progress: Progress, workers: int) -> ImportResult:
    sqlite = session.get_bind().dialect.name == "sqlite"
    if not sqlite:
        session.execute(text(f"SET LOCAL work_mem = '{IMPORT_WORK_MEM}'"))
    references, name_key = _references(session), os.urandom(32)
    records, total = _stage_file(session, cipher, layout, data, references, name_key, progress, workers)
    if sqlite:
        hold_the_write_lock(session)
    _find_known(session)
    _reject_conflicts(session, sorted(w for w in session.scalars(select(STAGE.c.municipality_id).distinct())
                                      if w is not None))
    result = ImportResult(filename, layout.name, records, total)
    _find_payer_changes(session, cipher, name_key, workers)
    s, k = STAGE.c, KNOWN.c
    parts = {ward: WardPart(count, int(amount or 0)) for ward, count, amount in session.execute(
        select(s.municipality_id, func.count(), func.sum(s.amount)).group_by(s.municipality_id))}
    rows = record_file(session, digest, filename, layout.name, parts)
    voided = _apply(session, rows, result, progress)
    created: dict[int, int] = dict(session.execute(select(s.municipality_id, func.count()).group_by(s.municipality_id)
                                   .where(~select(k.line).where(k.line == s.line).exists())).all())
    changed: dict[tuple[int, str], int] = {(ward, change): count for ward, change, count in session.execute(
        select(k.municipality_id, k.change, func.count()).where(k.change.is_not(None))
        .group_by(k.municipality_id, k.change))}
    for ward, row in rows.items():  # each ward's part of the file, on its own chain
        row.created, row.amended = created.get(ward, 0), changed.get((ward, "amended"), 0)
        row.unchanged = row.records - row.created - row.amended - changed.get((ward, "payer"), 0)
        record_event(session, "ledger.imported", "ledger_import", row.id, municipality_id=ward,
                     data={"file": result.filename, "sha256": digest, "records": row.records,
                           "total_amount": row.total_amount, "created": row.created, "amended": row.amended,
                           "voided_slips": voided.get(ward, 0)})
    # The staging tables go with the transaction: PostgreSQL drops them at commit or rollback;
    # SQLite would keep them for the connection's life.
    _drop_stage(session)
    return result


def hold_the_write_lock(session: Session) -> None:
    """SQLite: take the write lock before the ledger is read, so that the import reads what it then writes.

    Reading and staging the file (the long part) wrote only temporary tables, which lock no
    other writer: that is committed first. Begun the usual way, the reads that follow would
    see a snapshot that another import's commit makes stale, and the first write would fail
    at once ("database is locked") instead of waiting for the lock.
    """
    driver = session.connection().connection.driver_connection
    assert driver is not None
    if driver.in_transaction:
        driver.commit()
    driver.execute("BEGIN IMMEDIATE")


def _forget_stage(session: Session) -> None:
    """SQLite: drop the staging tables of an import that failed (committed before its rollback)."""
    try:
        _drop_stage(session)
    finally:
        session.rollback()


def _references(session: Session) -> References:
    municipalities = {code: id_ for code, id_ in session.execute(select(Municipality.code, Municipality.id))}
    columns = (FundType.id, FundType.municipality_id, FundType.code, FundType.active)
    funds = {(m, code): (id_, active) for ward in sorted(municipalities.values())  # each ward's own, on its node
             for id_, m, code, active in session.execute(select(*columns).where(FundType.municipality_id == ward))}
    return References(municipalities, funds)


# -- reading and staging --------------------------------------------------------------------------

def _stage_file(session: Session, cipher: DataCipher, layout: Layout, data: bytes, references: References,
                name_key: bytes, progress: Progress, workers: int) -> tuple[int, int]:
    """Read, check and stage every record; return (records, total), or raise LedgerFileRejected with every error."""
    _drop_stage(session)
    STAGE.create(session.connection())
    copy = session.get_bind().dialect.name == "postgresql"
    check = FileCheck()
    progress.start("reading the file", data.count(b"\n"))
    for piece in read_pieces(layout, data, references, cipher, name_key=name_key, copy=copy,
                             workers=workers):
        if not check.add(piece):
            break
        _copy(session, piece) if copy else _insert(session, piece)
        progress.advance(piece.records + len(piece.others) + len(piece.layout_errors))
    progress.finish()
    errors = check.layout_errors
    if layout.format == "fixed" and not check.capped and not any(e.line == 0 for e in errors):
        errors = errors + envelope_errors(check, references, counts_comparable=not errors)
    errors = errors + check.row_errors + _duplicates(session) + _el_numbers_taken(session)
    if not errors and not check.records:
        errors.append(LineError(0, None, "the file holds no assessment records"))
    if errors:
        raise LedgerFileRejected(sorted(errors, key=lambda e: e.line))
    _analyze(session, STAGE)
    return check.records, check.total


def _copy(session: Session, piece: Piece) -> None:
    if not piece.copy_text:
        return
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor().copy(f"COPY {STAGE.name} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
        copy.write(piece.copy_text)


def _insert(session: Session, piece: Piece) -> None:
    if piece.rows:
        session.connection().execute(insert(STAGE), [dict(zip(STAGE_COLUMNS, row, strict=True))
                                                     for row in piece.rows])


def _analyze(session: Session, stage: Table) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(f"ANALYZE {stage.name}")  # temporary tables get no autovacuum


def _drop_stage(session: Session) -> None:
    KNOWN.drop(session.connection(), checkfirst=True)
    STAGE.drop(session.connection(), checkfirst=True)


def _duplicates(session: Session) -> list[LineError]:
    """Every line whose key an earlier line of the file already has."""
    key = (STAGE.c.municipality_code, STAGE.c.source_key, STAGE.c.installment)
    first = select(*key, func.min(STAGE.c.line).label("first")).group_by(*key) \
        .having(func.count() > 1).subquery()
    rows = session.execute(select(STAGE.c.line, STAGE.c.source_key, STAGE.c.installment, first.c.first)
                           .join(first, and_(*(c == first.c[c.name] for c in key)))
                           .where(STAGE.c.line > first.c.first))
    return [LineError(line, "assessment_id", f"duplicate of line {first_line} (same assessment {source_key}, "
                                             f"instalment {installment})")
            for line, source_key, installment, first_line in rows]


def _el_numbers_taken(session: Session) -> list[LineError]:
    """Every line whose eL番号 an earlier line, or another instalment in the ledger, already has.

    eLTAX payment data is matched on it. An instalment that gives its number up and another
    that takes it over must come in two files, the first freeing it.
    """
    s = STAGE.c
    key = (s.municipality_code, s.el_number)
    first = select(*key, func.min(s.line).label("first")).where(s.el_number.is_not(None)).group_by(*key) \
        .having(func.count() > 1).subquery()
    twice = session.execute(select(s.line, s.el_number, first.c.first)
                            .join(first, and_(*(c == first.c[c.name] for c in key))).where(s.line > first.c.first))
    errors = [LineError(line, "el_number", f"{number} is also on line {first_line}; an eL番号 belongs to one "
                                           "instalment") for line, number, first_line in twice]
    a = _assessments.c
    wards = sorted(w for w in session.scalars(select(s.municipality_id).distinct()) if w is not None)
    taken = session.execute(
        select(s.line, s.el_number, a.source_key, a.installment)
        .join(_assessments, and_(a.municipality_id == s.municipality_id, a.el_number == s.el_number))
        .where(a.municipality_id.in_(wards), (a.source_key != s.source_key) | (a.installment != s.installment))
        .order_by(s.line))
    errors += [LineError(line, "el_number", f"{number} is already the eL番号 of assessment {source_key}, "
                                            f"instalment {installment}")
               for line, number, source_key, installment in taken]
    return errors


# -- what the ledger holds already ----------------------------------------------------------------

def _find_known(session: Session) -> None:
    """Note the staged lines whose key the ledger holds (found through its unique index), and amendments."""
    KNOWN.create(session.connection())
    a = _assessments.c
    # Whatever the printed slip shows is an amendment: its unpaid slip is voided and printed anew.
    amended = ((a.amount != STAGE.c.amount) | (a.due_date != STAGE.c.due_date) | (a.late_fee != STAGE.c.late_fee)
               | (a.dunning_fee != STAGE.c.dunning_fee) | a.el_number.is_distinct_from(STAGE.c.el_number)
               | a.el_qr.is_distinct_from(STAGE.c.el_qr))
    query = select(STAGE.c.line, a.id, a.municipality_id, a.fund_type_id, a.fiscal_year, a.amount, a.due_date,
                   a.late_fee, a.dunning_fee, a.el_number, a.payer_name_enc, a.revision,
                   case((amended, literal("amended")),
                        (a.payer_ref_hmac != STAGE.c.payer_ref_hmac, literal("payer")), else_=None)
                   ).join(_assessments, and_(a.municipality_id == STAGE.c.municipality_id,
                                             a.source_key == STAGE.c.source_key, a.installment == STAGE.c.installment))
    session.execute(insert(KNOWN).from_select([c.name for c in KNOWN.columns], query))
    _analyze(session, KNOWN)


def _reject_conflicts(session: Session, wards: list[int]) -> None:
    """A known key cannot move to another fund or fiscal year: refuse the file naming each such line."""
    fund = table(FundType)
    rows = session.execute(
        select(STAGE.c.line, STAGE.c.source_key, STAGE.c.fund_type_id != KNOWN.c.fund_type_id, fund.c.code,
               STAGE.c.fiscal_year != KNOWN.c.fiscal_year, KNOWN.c.fiscal_year)
        .join(KNOWN, KNOWN.c.line == STAGE.c.line).join(fund, on_ward(KNOWN, "fund_type_id", fund))
        .where(fund.c.municipality_id.in_(wards),
               (STAGE.c.fund_type_id != KNOWN.c.fund_type_id) | (STAGE.c.fiscal_year != KNOWN.c.fiscal_year))
        .order_by(STAGE.c.line)).all()
    errors = []
    for line, source_key, fund_moved, known_fund, year_moved, known_year in rows:
        if fund_moved:
            errors.append(LineError(line, "fund_code", f"assessment {source_key} is recorded under fund "
                                                       f"{known_fund}; a key cannot move to another fund"))
        if year_moved:
            errors.append(LineError(line, "fiscal_year", f"assessment {source_key} is recorded for fiscal year "
                                                         f"{known_year}; a key cannot move to another year"))
    if errors:
        raise LedgerFileRejected(errors)


def _find_payer_changes(session: Session, cipher: DataCipher, name_key: bytes, workers: int) -> None:
    """Mark the known lines whose payer name alone changed (stored names decrypted, compared by keyed digest)."""
    query = select(KNOWN.c.line, KNOWN.c.payer_name_enc, STAGE.c.name_digest) \
        .join(STAGE, STAGE.c.line == KNOWN.c.line).where(KNOWN.c.change.is_(None))
    rows = ((line, None if stored is None else bytes(stored), bytes(staged))
            for line, stored, staged in _stream(session, query))
    changed = changed_names(rows, cipher, name_key=name_key, workers=workers)
    for start in range(0, len(changed), CHUNK):
        session.execute(update(KNOWN).where(KNOWN.c.line.in_(changed[start:start + CHUNK])).values(change="payer"))


def _stream(session: Session, query: Any) -> Iterator[Any]:
    result = session.execute(query.execution_options(yield_per=CHUNK))
    yield from result


# -- applying -------------------------------------------------------------------------------------

def _apply(session: Session, rows: dict[int, LedgerImport], result: ImportResult, progress: Progress
           ) -> dict[int, int]:
    """Apply the staged file, each line under its ward's import row; the slips voided per ward."""
    progress.start("applying", 3)
    now = utcnow()
    result.created = _insert_new(session, rows, now, result.records)
    progress.advance(1)
    voided = _amend(session, rows, now, result)
    progress.advance(1)
    _update_payers(session, sorted(rows), now, result)
    progress.advance(1)
    result.unchanged = result.records - result.created - result.amended - result.payer_updated
    progress.finish()
    return voided


def _insert_new(session: Session, rows: dict[int, LedgerImport], now: Any, records: int) -> int:
    """Insert the lines whose key is new, in line order, each with its first revision; return how many."""
    s = STAGE.c
    new = select(s.municipality_id, s.source_key, s.fund_type_id, s.fiscal_year, s.installment, s.payer_ref_hmac,
                 s.payer_name_enc, s.amount, s.due_date, s.late_fee, s.dunning_fee, s.el_number, s.el_qr, literal(1),
                 literal(now, _assessments.c.created_at.type), literal(now, _assessments.c.updated_at.type)) \
        .where(~select(KNOWN.c.line).where(KNOWN.c.line == s.line).exists()).order_by(s.line)
    columns = ["municipality_id", "source_key", "fund_type_id", "fiscal_year", "installment", "payer_ref_hmac",
               "payer_name_enc", "amount", "due_date", "late_fee", "dunning_fee", "el_number", "el_qr", "revision",
               "created_at", "updated_at"]
    revision_columns = ["assessment_id", "municipality_id", "revision", "amount", "due_date", "ledger_import_id",
                        "recorded_at"]
    a = _assessments.c
    if session.get_bind().dialect.name == "postgresql":  # one statement: the inserted rows feed the revisions
        inserted = insert(_assessments).from_select(columns, new).returning(
            a.id, a.municipality_id, a.amount, a.due_date).cte("new")
        statement = insert(_revisions).from_select(revision_columns, select(
            inserted.c.id, inserted.c.municipality_id, literal(1), inserted.c.amount, inserted.c.due_date,
            import_of_ward(rows, inserted.c.municipality_id),
            literal(now, _revisions.c.recorded_at.type)))
        session.execute(statement)
    else:
        _insert_new_sqlite(session, rows, now, columns, new, revision_columns)
    known = session.scalar(select(func.count()).select_from(KNOWN))
    return records - (known or 0)


def _insert_new_sqlite(session: Session, rows: dict[int, LedgerImport], now: Any, columns: list[str], new: Any,
                       revision_columns: list[str]) -> None:
    """No INSERT in a WITH on SQLite: the new rows are found again by their key for their revisions."""
    a, s = _assessments.c, STAGE.c
    session.execute(insert(_assessments).from_select(columns, new))
    session.execute(insert(_revisions).from_select(revision_columns, select(
        a.id, a.municipality_id, literal(1), a.amount, a.due_date, import_of_ward(rows, a.municipality_id),
        literal(now, _revisions.c.recorded_at.type))
        .join(STAGE, and_(a.municipality_id == s.municipality_id, a.source_key == s.source_key,
                          a.installment == s.installment))
        .where(~select(KNOWN.c.line).where(KNOWN.c.line == s.line).exists())))


def _amend(session: Session, rows: dict[int, LedgerImport], now: Any, result: ImportResult) -> dict[int, int]:
    """Apply the amended lines: new amount and due date, a revision each, their unpaid slips voided (per ward)."""
    k, s, a = KNOWN.c, STAGE.c, _assessments.c
    amended = select(k.assessment_id, k.municipality_id, k.revision, k.amount, s.amount, k.due_date, s.due_date,
                     s.source_key, s.installment, k.late_fee, s.late_fee, k.dunning_fee, s.dunning_fee,
                     k.el_number.is_distinct_from(s.el_number)).join(STAGE, s.line == k.line) \
        .where(k.change == "amended").order_by(s.line)
    lines = session.execute(amended).all()
    if not lines:
        return {}
    wards = sorted(rows)  # the file's wards: every statement names them (docs/scaling.md)
    session.execute(update(_assessments).where(a.municipality_id.in_(wards), a.municipality_id == k.municipality_id,
                                               a.id == k.assessment_id, k.line == s.line, k.change == "amended")
                    .values(amount=s.amount, due_date=s.due_date, late_fee=s.late_fee, dunning_fee=s.dunning_fee,
                            el_number=s.el_number, el_qr=s.el_qr, revision=a.revision + 1,
                            payer_ref_hmac=s.payer_ref_hmac, payer_name_enc=s.payer_name_enc, updated_at=now))
    session.execute(insert(_revisions).from_select(
        ["assessment_id", "municipality_id", "revision", "amount", "due_date", "ledger_import_id", "recorded_at"],
        select(k.assessment_id, k.municipality_id, k.revision + 1, s.amount, s.due_date,
               import_of_ward(rows, k.municipality_id),
               literal(now, _revisions.c.recorded_at.type))
        .join(STAGE, s.line == k.line).where(k.change == "amended").order_by(s.line)))
    voided = session.execute(
        update(_slips).where(_slips.c.municipality_id.in_(wards), _slips.c.status == "issued",
                             tuple_(_slips.c.municipality_id, _slips.c.assessment_id).in_(
                                 select(k.municipality_id, k.assessment_id).where(k.change == "amended")))
        .values(status="void", voided_at=now, void_reason="assessment amended")
        .returning(_slips.c.assessment_id, _slips.c.number, _slips.c.reissue)).all()
    slips_of: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for assessment_id, number, reissue in sorted(voided, key=lambda v: (v[1], v[2])):
        slips_of[assessment_id].append((number, reissue))
    events: list[dict[str, Any]] = []
    voided_in: dict[int, int] = defaultdict(int)
    for (assessment_id, municipality_id, revision, old_amount, amount, old_due, due, source_key, installment,
         old_late, late, old_dunning, dunning, el_changed) in lines:
        voided_in[municipality_id] += len(slips_of[assessment_id])
        result.amendments.append(f"{source_key}/{installment}: {old_amount:,} -> {amount:,} yen")
        data: dict[str, Any] = {"revision": revision + 1, "amount": [old_amount, amount],
                                "due_date": [old_due.isoformat(), due.isoformat()]}
        if (old_late, old_dunning) != (late, dunning):
            data.update(late_fee=[old_late, late], dunning_fee=[old_dunning, dunning])
        if el_changed:
            data["el_number_changed"] = True
        events.append(dict(kind="assessment.amended", subject_type="assessment", subject_id=str(assessment_id),
                           municipality_id=municipality_id, data=data))
        events += [dict(kind="slip.voided", subject_type="slip", subject_id=f"{number}-{reissue}",
                        municipality_id=municipality_id, data={"reason": "assessment amended"})
                   for number, reissue in slips_of[assessment_id]]
    _record_events(session, events)
    result.amended, result.voided_slips = len(lines), len(voided)
    return dict(voided_in)


def _update_payers(session: Session, wards: list[int], now: Any, result: ImportResult) -> None:
    """Store the new payer details of the lines that changed only those (no revision, no slip voided)."""
    k, s, a = KNOWN.c, STAGE.c, _assessments.c
    changed = session.execute(select(k.assessment_id, k.municipality_id).where(k.change == "payer")
                              .order_by(k.line)).all()
    if not changed:
        return
    session.execute(update(_assessments).where(a.municipality_id.in_(wards), a.municipality_id == k.municipality_id,
                                               a.id == k.assessment_id, k.line == s.line, k.change == "payer")
                    .values(payer_ref_hmac=s.payer_ref_hmac, payer_name_enc=s.payer_name_enc, updated_at=now))
    _record_events(session, [dict(kind="assessment.payer_updated", subject_type="assessment",
                                  subject_id=str(assessment_id), municipality_id=municipality_id)
                             for assessment_id, municipality_id in changed])
    result.payer_updated = len(changed)


def _record_events(session: Session, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), CHUNK):
        record_events(session, events[start:start + CHUNK])
