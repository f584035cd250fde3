"""Import assessments (調定) from the core system: validate the whole file, then apply it atomically."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.identifiers import is_valid_municipality_code, municipality_check_digit
from domain.layouts import MAX_ERRORS, Layout, LineError, Record, read
from gateway.crypto import DataCipher
from gateway.db import transaction, utcnow
from gateway.errors import GatewayError, LedgerFileRejected
from gateway.layouts import load_layout
from gateway.models import Assessment, AssessmentRevision, FundType, LedgerImport, Municipality, Slip
from gateway.progress import NoProgress, Progress
from gateway.services.events import record_event, record_events

PRESCRIPTION_YEARS = 5  # a claim's due date is never further than this past its fiscal year
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class LedgerRow:
    line: int
    municipality_code: str
    assessment_id: str
    fund_code: str
    fiscal_year: int
    installment: int
    payer_ref: str
    payer_name: str
    amount: int
    due_date: date

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.municipality_code, self.assessment_id, self.installment)


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


def import_ledger(session: Session, cipher: DataCipher, data: bytes, *, filename: str,
                  layout_name: str = "kokin-csv", progress: Progress | None = None) -> ImportResult:
    """Validate every line of `data`, then apply it in one transaction.

    Idempotent: the same bytes again change nothing; a changed amount or due date for a
    known assessment is an amendment that voids its unpaid slip. Raises LedgerFileRejected
    listing every error (line and field) and then nothing has been applied.
    """
    progress = progress or NoProgress()
    layout = load_layout(layout_name)  # a mistyped layout is an error even for a known file
    digest = hashlib.sha256(data).hexdigest()
    previous = session.scalar(select(LedgerImport).where(LedgerImport.sha256 == digest))
    if previous is not None:
        return _already_imported(previous)
    rows = validate_ledger_file(session, layout, data)
    existing = _load_existing(session, rows, progress)
    errors = _conflicts(rows, existing)
    if errors:
        raise LedgerFileRejected(errors)
    result = ImportResult(filename, layout.name, len(rows), sum(r.amount for r in rows))
    try:
        with transaction(session):
            _apply(session, cipher, rows, existing, digest, result, progress)
    except IntegrityError as exc:
        session.rollback()
        previous = session.scalar(select(LedgerImport).where(LedgerImport.sha256 == digest))
        if previous is not None:  # a concurrent import of the same file won
            return _already_imported(previous)
        raise GatewayError("the ledger changed while this file was being imported; import it again",
                           code="ledger_conflict", status=409) from exc
    return result


def _already_imported(previous: LedgerImport) -> ImportResult:
    return ImportResult(previous.filename, previous.layout, previous.records, previous.total_amount,
                        unchanged=previous.records, already_imported=True)


def validate_ledger_file(session: Session, layout: Layout, data: bytes) -> list[LedgerRow]:
    """Return the file's rows, or raise LedgerFileRejected with every error found. Writes nothing."""
    records, errors = read(layout, data)
    data_records = [r for r in records if r.kind == "data"]
    municipalities = {m.code: m for m in session.scalars(select(Municipality))}
    # The envelope is checked only when the file could be read to its end record by record.
    if layout.format == "fixed" and len(errors) <= MAX_ERRORS and not any(e.line == 0 for e in errors):
        errors += _check_envelope(records, data_records, municipalities, counts_comparable=not errors)
    funds = {(f.municipality_id, f.code): f.active for f in session.scalars(select(FundType))}
    rows: list[LedgerRow] = []
    seen: dict[tuple[str, str, int], int] = {}
    for record in data_records:
        row = LedgerRow(line=record.line, **{k: v for k, v in record.values.items() if k != "filler"})
        row_errors = _check_row(row, municipalities, funds)
        if row.key in seen:
            row_errors.append(LineError(row.line, "assessment_id", f"duplicate of line {seen[row.key]} "
                                        f"(same assessment {row.assessment_id}, instalment {row.installment})"))
        seen.setdefault(row.key, row.line)
        errors += row_errors
        rows.append(row)
    if not errors and not rows:
        errors.append(LineError(0, None, "the file holds no assessment records"))
    if errors:
        raise LedgerFileRejected(sorted(errors, key=lambda e: e.line))
    return rows


def _check_envelope(records: list[Record], data_records: list[Record], municipalities: dict[str, Municipality],
                    *, counts_comparable: bool) -> list[LineError]:
    """Check header first, trailer and end last, and the trailer's count and total.

    When records were already refused, the count and total cannot be compared: the refused
    records are missing from them and a mismatch would only repeat those errors.
    """
    kinds = [r.kind for r in records]
    errors: list[LineError] = []
    if not kinds or kinds[0] != "header":
        errors.append(LineError(1, "record_kind", "the first record must be the header (kind 1)"))
    if kinds.count("header") > 1:
        errors.append(LineError(0, None, "more than one header record"))
    if "trailer" not in kinds or "end" not in kinds or kinds[-2:] != ["trailer", "end"]:
        errors.append(LineError(0, None, "the file must end with a trailer (kind 8) and an end record "
                                         "(kind 9): truncated file?"))
        return errors
    header, trailer = records[0], records[-2]
    count, total = len(data_records), sum(r.values["amount"] for r in data_records)
    if counts_comparable and trailer.values["record_count"] != count:
        errors.append(LineError(trailer.line, "record_count",
                                f"trailer says {trailer.values['record_count']:,} records, file has {count:,}"))
    if counts_comparable and trailer.values["total_amount"] != total:
        errors.append(LineError(trailer.line, "total_amount",
                                f"trailer says {trailer.values['total_amount']:,} yen, records add up to {total:,}"))
    if header.kind == "header":
        errors += _check_header_municipality(header, data_records, municipalities)
    return errors


def _check_header_municipality(header: Record, data_records: list[Record],
                               municipalities: dict[str, Municipality]) -> list[LineError]:
    code = header.values["municipality_code"]
    problem = _municipality_problem(code, municipalities)
    if problem:
        return [LineError(header.line, "municipality_code", problem)]
    return [LineError(r.line, "municipality_code", f"differs from the header's {code}")
            for r in data_records if r.values["municipality_code"] != code]


def _municipality_problem(code: str, municipalities: dict[str, Municipality]) -> str | None:
    if not is_valid_municipality_code(code):
        return f"{code} has a wrong check digit (expected {municipality_check_digit(code[:5])})"
    if code not in municipalities:
        return f"{code} is not a configured municipality"
    return None


def _check_row(row: LedgerRow, municipalities: dict[str, Municipality],
               funds: dict[tuple[int, str], bool]) -> list[LineError]:
    errors: list[LineError] = []
    code = row.municipality_code
    problem = _municipality_problem(code, municipalities)
    if problem:
        errors.append(LineError(row.line, "municipality_code", problem))
    elif (municipalities[code].id, row.fund_code) not in funds:
        errors.append(LineError(row.line, "fund_code", f"{row.fund_code!r} is not a fund of municipality {code}"))
    elif not funds[(municipalities[code].id, row.fund_code)]:
        errors.append(LineError(row.line, "fund_code", f"fund {row.fund_code!r} is inactive in municipality {code}"))
    first_day = date(row.fiscal_year, 4, 1)
    last_day = date(row.fiscal_year + 1 + PRESCRIPTION_YEARS, 3, 31)
    if not first_day <= row.due_date <= last_day:
        errors.append(LineError(row.line, "due_date", f"{row.due_date} is outside fiscal year {row.fiscal_year} "
                                f"and its {PRESCRIPTION_YEARS}-year limitation period"))
    return errors


def _load_existing(session: Session, rows: list[LedgerRow], progress: Progress) -> dict[tuple[str, str, int], Any]:
    """Return the assessments already known for the file's keys, by key."""
    codes = {m.id: m.code for m in session.scalars(select(Municipality))}
    keys = sorted({(r.assessment_id, r.installment) for r in rows})
    found: dict[tuple[str, str, int], Any] = {}
    progress.start("checking against the ledger", len(keys))
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start: start + LOOKUP_CHUNK]
        query = select(Assessment.id, Assessment.municipality_id, Assessment.source_key, Assessment.installment,
                       Assessment.fiscal_year, Assessment.amount, Assessment.due_date, Assessment.payer_ref,
                       Assessment.payer_name_enc, Assessment.revision, FundType.code.label("fund_code")
                       ).join(FundType).where(tuple_(Assessment.source_key, Assessment.installment).in_(chunk))
        for existing in session.execute(query):
            found[(codes[existing.municipality_id], existing.source_key, existing.installment)] = existing
        progress.advance(len(chunk))
    progress.finish()
    return found


def _conflicts(rows: list[LedgerRow], existing: dict[tuple[str, str, int], Any]) -> list[LineError]:
    errors = []
    for row in rows:
        known = existing.get(row.key)
        if known is None:
            continue
        if known.fund_code != row.fund_code:
            errors.append(LineError(row.line, "fund_code", f"assessment {row.assessment_id} is recorded under "
                                    f"fund {known.fund_code}; a key cannot move to another fund"))
        if known.fiscal_year != row.fiscal_year:
            errors.append(LineError(row.line, "fiscal_year", f"assessment {row.assessment_id} is recorded for "
                                    f"fiscal year {known.fiscal_year}; a key cannot move to another year"))
    return errors


def _apply(session: Session, cipher: DataCipher, rows: list[LedgerRow], existing: dict[tuple[str, str, int], Any],
           digest: str, result: ImportResult, progress: Progress) -> None:
    ledger_import = LedgerImport(sha256=digest, filename=result.filename[:255], layout=result.layout,
                                 records=result.records, total_amount=result.total_amount,
                                 created=0, amended=0, unchanged=0)
    session.add(ledger_import)
    session.flush()
    progress.start("applying", len(rows))
    new_rows = [r for r in rows if r.key not in existing]
    _insert_new(session, cipher, new_rows, ledger_import.id)
    result.created = len(new_rows)
    progress.advance(len(new_rows))
    for row in rows:
        known = existing.get(row.key)
        if known is not None:
            _update_known(session, cipher, row, known, ledger_import.id, result)
            progress.advance(1)
    progress.finish()
    ledger_import.created, ledger_import.amended, ledger_import.unchanged = (
        result.created, result.amended, result.unchanged)
    record_event(session, "ledger.imported", "ledger_import", ledger_import.id, municipality_id=None,
                 data={"file": result.filename, "sha256": digest, "records": result.records,
                       "total_amount": result.total_amount, "created": result.created,
                       "amended": result.amended, "voided_slips": result.voided_slips})


def _insert_new(session: Session, cipher: DataCipher, rows: list[LedgerRow], import_id: int) -> None:
    if not rows:
        return
    munis = {m.code: m.id for m in session.scalars(select(Municipality))}
    funds = {(f.municipality_id, f.code): f.id for f in session.scalars(select(FundType))}
    now = utcnow()
    values = []
    for r in rows:
        muni_id = munis[r.municipality_code]
        values.append(dict(municipality_id=muni_id, source_key=r.assessment_id,
                           fund_type_id=funds[(muni_id, r.fund_code)], fiscal_year=r.fiscal_year,
                           installment=r.installment, payer_ref=r.payer_ref,
                           payer_name_enc=cipher.encrypt(r.payer_name) if r.payer_name else None,
                           amount=r.amount, due_date=r.due_date, revision=1, created_at=now, updated_at=now))
    ids = session.scalars(insert(Assessment).returning(Assessment.id, sort_by_parameter_order=True), values).all()
    session.execute(insert(AssessmentRevision), [
        dict(assessment_id=i, revision=1, amount=r.amount, due_date=r.due_date, ledger_import_id=import_id,
             recorded_at=now) for i, r in zip(ids, rows, strict=True)
    ])


def _update_known(session: Session, cipher: DataCipher, row: LedgerRow, known: Any, import_id: int,
                  result: ImportResult) -> None:
    payer_changed = row.payer_ref != known.payer_ref or row.payer_name != (
        cipher.decrypt(known.payer_name_enc) if known.payer_name_enc else "")
    amended = row.amount != known.amount or row.due_date != known.due_date
    if not (amended or payer_changed):
        result.unchanged += 1
        return
    now = utcnow()
    changes: dict[str, Any] = dict(payer_ref=row.payer_ref, updated_at=now,
                                   payer_name_enc=cipher.encrypt(row.payer_name) if row.payer_name else None)
    if amended:
        changes.update(amount=row.amount, due_date=row.due_date, revision=known.revision + 1)
        session.add(AssessmentRevision(assessment_id=known.id, revision=known.revision + 1, amount=row.amount,
                                       due_date=row.due_date, ledger_import_id=import_id, recorded_at=now))
    session.execute(update(Assessment).where(Assessment.id == known.id).values(**changes))
    if not amended:
        record_event(session, "assessment.payer_updated", "assessment", known.id, municipality_id=known.municipality_id)
        result.payer_updated += 1
        return
    result.amended += 1
    result.amendments.append(f"{row.assessment_id}/{row.installment}: {known.amount:,} -> {row.amount:,} yen")
    voided = session.execute(
        update(Slip).where(Slip.assessment_id == known.id, Slip.status == "issued")
        .values(status="void", voided_at=now, void_reason="assessment amended")
        .returning(Slip.number, Slip.reissue)
    ).all()
    result.voided_slips += len(voided)
    record_events(session, [
        dict(kind="assessment.amended", subject_type="assessment", subject_id=str(known.id),
             municipality_id=known.municipality_id,
             data={"revision": known.revision + 1, "amount": [known.amount, row.amount],
                   "due_date": [known.due_date.isoformat(), row.due_date.isoformat()]}),
        *[dict(kind="slip.voided", subject_type="slip", subject_id=f"{number}-{reissue}",
               municipality_id=known.municipality_id, data={"reason": "assessment amended"})
          for number, reissue in voided],
    ])
