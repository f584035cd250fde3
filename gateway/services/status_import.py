"""Import status changes from the core system: instalments paid elsewhere or cancelled are closed.

`kokin ledger import FILE --layout kokin-status-csv` (CONTRACT: "The ward's 収納管理"). The
file is read and checked in full first (every line's errors: layout, municipality, unknown
assessment or instalment, a date in the future, a status and channel that do not go
together, a key twice), and applied in one transaction only when it has none: nothing is
applied otherwise. A status file is a day's changes, not the ledger: it is read whole and
its keys looked up a chunk at a time.

Closing an instalment stores why, when and through which channel (paid elsewhere), closes
its issued slips (status `closed`: no longer payable), and writes an event for each. The
instalments are locked first, as a payment's settlement locks them: money that arrives
later is kept and raised by `domain.booking.decide`, and a payment the gateway had already
applied is raised at once (`double_payment` when paid elsewhere too, `payment_on_void_slip`
when the claim was cancelled), never refunded here: the core system decides 充当 or 還付.
Idempotent: the same file again changes nothing; a status an instalment already has is
counted as unchanged.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.booking import CLOSED_REASONS
from domain.calendar import business_date
from domain.layouts import Layout, LineError, Record, read
from gateway.db import transaction, utcnow
from gateway.errors import GatewayError, LedgerFileRejected
from gateway.layouts import load_layout
from gateway.models import Assessment, LedgerImport, Municipality, Payment, Slip, table
from gateway.models.base import on_ward
from gateway.observability.metrics import observed_import
from gateway.services.events import record_event, record_events
from gateway.services.exceptions import raise_exceptions
from gateway.services.ledger_file import municipality_problem
from gateway.services.ledger_files import FileOnRecord, WardPart, file_on_record, record_file
from gateway.services.ledger_import import hold_the_write_lock

STATUS_FIELDS = ("municipality_code", "assessment_id", "installment", "status", "changed_on", "channel")
PAID_ELSEWHERE_CHANNELS = ("bank", "cashier", "direct_debit", "eltax", "other")
CHUNK = 5_000  # keys in one IN list
_assessments, _slips, _payments = table(Assessment), table(Slip), table(Payment)

Key = tuple[int, str, int]  # (municipality id, assessment id in the core system, instalment)
Status = tuple[str, date, str | None]  # (closed reason, closed on, channel)


@dataclass
class StatusImportResult:
    filename: str
    layout: str
    records: int
    closed: int = 0  # instalments closed by this file
    changed: int = 0  # instalments already closed whose reason, date or channel this file corrects
    unchanged: int = 0  # the status was already recorded
    closed_slips: int = 0
    raised: Counter[str] = field(default_factory=Counter)  # exceptions raised on payments already applied
    already_imported: bool = False


@dataclass
class _WardPart:
    """What the file changed in one ward: its `ledger.status_imported` event's counts."""

    closed: int = 0
    changed: int = 0
    closed_slips: int = 0
    raised: Counter[str] = field(default_factory=Counter)


def is_status_layout(layout: Layout) -> bool:
    """Whether `layout` describes status changes (its data fields are the status feed's), not assessments."""
    return tuple(f.name for f in layout.data.fields) == STATUS_FIELDS


def is_status_feed(layout_name: str) -> bool:
    """Whether the named layout (or .toml path) is a status feed's; raises LayoutError for an unknown one."""
    return is_status_layout(load_layout(layout_name))


@observed_import("status")
def import_status_changes(session: Session, data: bytes, *, filename: str,
                          layout_name: str = "kokin-status-csv") -> StatusImportResult:
    """Validate every line of `data`, then close the instalments it names, in one transaction.

    Raises LedgerFileRejected listing every error (line, field, why); then nothing is applied.
    The same bytes again change nothing.
    """
    layout = load_layout(layout_name)
    if not is_status_layout(layout):
        raise GatewayError(f"layout {layout.name} is not a status feed's", code="not_a_status_layout", status=422)
    digest = hashlib.sha256(data).hexdigest()
    previous = file_on_record(session, layout, data, digest)
    if previous is not None:
        return _already_imported(previous)
    try:
        with transaction(session):
            if session.get_bind().dialect.name == "sqlite":
                hold_the_write_lock(session)  # the reads below see what the writes then change
            return _import(session, layout, data, digest, filename)
    except IntegrityError as exc:
        previous = file_on_record(session, layout, data, digest)
        if previous is not None:  # a concurrent import of the same file won
            return _already_imported(previous)
        raise GatewayError("the ledger changed while this file was being imported; import it again",
                           code="ledger_conflict", status=409) from exc


def _already_imported(previous: FileOnRecord) -> StatusImportResult:
    return StatusImportResult(previous.filename, previous.layout, previous.records, unchanged=previous.records,
                              already_imported=True)


def _import(session: Session, layout: Layout, data: bytes, digest: str, filename: str) -> StatusImportResult:
    records, errors = read(layout, data)
    municipalities = {code: id_ for code, id_ in session.execute(select(Municipality.code, Municipality.id))}
    keyed, line_errors = _check_lines(records, municipalities, business_date(utcnow()))
    errors += line_errors
    found = _lookup(session, keyed)
    errors += _unknown(keyed, found)
    if not errors and not records:
        errors.append(LineError(0, None, "the file holds no status changes"))
    if errors:
        raise LedgerFileRejected(sorted(errors, key=lambda e: e.line))
    result = StatusImportResult(filename, layout.name, len(records))
    lines_of = Counter(municipality_id for municipality_id, _key, _installment in keyed)
    rows = record_file(session, digest, filename, layout.name,
                       {ward: WardPart(count, 0) for ward, count in lines_of.items()})
    by_ward = _apply(session, rows, keyed, found, result)
    for ward, row in rows.items():  # each ward's part of the file, on its own chain
        part = by_ward.get(ward, _WardPart())
        row.created, row.amended, row.unchanged = part.closed, part.changed, row.records - part.closed - part.changed
        record_event(session, "ledger.status_imported", "ledger_import", row.id, municipality_id=ward,
                     data={"file": result.filename, "sha256": digest, "records": row.records, "closed": part.closed,
                           "changed": part.changed, "unchanged": row.unchanged, "closed_slips": part.closed_slips,
                           "exceptions": dict(part.raised)})
    return result


# -- checking -------------------------------------------------------------------------------------

def _check_lines(records: list[Record], municipalities: dict[str, int],
                 today: date) -> tuple[dict[Key, tuple[int, Status]], list[LineError]]:
    """Check each line by itself and against the earlier ones: {key: (line, status)} to look up, and the errors."""
    keyed: dict[Key, tuple[int, Status]] = {}
    first_line: dict[tuple[str, str, int], int] = {}
    errors: list[LineError] = []
    for record in records:
        values, line = record.values, record.line
        code, key, installment = values["municipality_code"], values["assessment_id"], values["installment"]
        problems = _status_problems(line, values["status"], values["channel"])
        if values["changed_on"] > today:
            problems.append(LineError(line, "changed_on", f"{values['changed_on']} is later than today ({today})"))
        municipality = municipality_problem(code, municipalities)
        if municipality:
            problems.append(LineError(line, "municipality_code", municipality))
        first = first_line.setdefault((code, key, installment), line)
        if first != line:
            problems.append(LineError(line, "assessment_id", f"duplicate of line {first} (same assessment {key}, "
                                                             f"instalment {installment})"))
        errors += problems
        if not municipality and first == line:  # looked up, so that an unknown key is named beside other errors
            keyed[(municipalities[code], key, installment)] = (
                line, (values["status"], values["changed_on"], values["channel"] or None))
    return keyed, errors


def _status_problems(line: int, status: str, channel: str) -> list[LineError]:
    if status not in CLOSED_REASONS:
        return [LineError(line, "status", f"must be {' or '.join(CLOSED_REASONS)}, got {status!r}")]
    if status == "cancelled" and channel:
        return [LineError(line, "channel", f"must be empty for a cancellation, got {channel!r}")]
    if status == "paid_elsewhere" and channel not in PAID_ELSEWHERE_CHANNELS:
        shown = repr(channel) if channel else "nothing"
        return [LineError(line, "channel", f"a payment elsewhere names its channel "
                                           f"({', '.join(PAID_ELSEWHERE_CHANNELS)}), got {shown}")]
    return []


def _lookup(session: Session, keyed: dict[Key, tuple[int, Status]]) -> dict[tuple[int, str], dict[int, Any]]:
    """Every instalment of the assessments the file names: {(municipality id, key): {instalment: row}}."""
    by_municipality: dict[int, set[str]] = defaultdict(set)
    for municipality_id, key, _ in keyed:
        by_municipality[municipality_id].add(key)
    found: dict[tuple[int, str], dict[int, Any]] = defaultdict(dict)
    a = _assessments.c
    for municipality_id, keys in by_municipality.items():
        ordered = sorted(keys)
        for start in range(0, len(ordered), CHUNK):
            rows = session.execute(select(a.id, a.municipality_id, a.source_key, a.installment)
                                   .where(a.municipality_id == municipality_id,
                                          a.source_key.in_(ordered[start:start + CHUNK])))
            for row in rows:
                found[(row.municipality_id, row.source_key)][row.installment] = row
    return found


def _unknown(keyed: dict[Key, tuple[int, Status]], found: dict[tuple[int, str], dict[int, Any]]) -> list[LineError]:
    errors = []
    for (municipality_id, key, installment), (line, _) in keyed.items():
        instalments = found.get((municipality_id, key), {})
        if not instalments:
            errors.append(LineError(line, "assessment_id", f"assessment {key} is not in the ledger"))
        elif installment not in instalments:
            known = ", ".join(str(n) for n in sorted(instalments))
            errors.append(LineError(line, "installment", f"assessment {key} has no instalment {installment} "
                                                         f"(it has {known})"))
    return errors


# -- applying -------------------------------------------------------------------------------------

def _apply(session: Session, rows: dict[int, LedgerImport], keyed: dict[Key, tuple[int, Status]],
           found: dict[tuple[int, str], dict[int, Any]], result: StatusImportResult) -> dict[int, _WardPart]:
    """Lock the instalments, then close each whose recorded status differs, in the file's line order.

    What changed in each ward that changed.
    """
    wanted = {found[(m, key)][n].id: status for (m, key, n), (_, status) in sorted(keyed.items(), key=lambda kv: kv[1])}
    wards: dict[int, list[int]] = defaultdict(list)
    for (m, key, n) in keyed:
        wards[m].append(found[(m, key)][n].id)
    current = _lock(session, wards)
    changes = [(assessment_id, status, current[assessment_id]) for assessment_id, status in wanted.items()
               if (current[assessment_id].closed_reason, current[assessment_id].closed_on,
                   current[assessment_id].closed_channel) != status]
    result.unchanged = len(wanted) - len(changes)
    result.changed = sum(1 for _, _, row in changes if row.closed_reason is not None)
    result.closed = len(changes) - result.changed
    by_ward: dict[int, _WardPart] = defaultdict(_WardPart)
    if not changes:
        return by_ward
    slips, applied = _close(session, rows, changes)
    result.closed_slips = sum(len(closed) for closed in slips.values())
    events: list[dict[str, Any]] = []
    exceptions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for assessment_id, status, row in changes:
        part = by_ward[row.municipality_id]
        part.closed += row.closed_reason is None
        part.changed += row.closed_reason is not None
        part.closed_slips += len(slips[assessment_id])
        events += _close_events(assessment_id, status, row, sorted(slips[assessment_id]))
        exceptions[row.municipality_id] += [_applied_payment_flag(payment, status)
                                            for payment in applied[assessment_id]]
    for start in range(0, len(events), CHUNK):
        record_events(session, events[start:start + CHUNK])
    for municipality_id, flags in exceptions.items():
        by_ward[municipality_id].raised = raise_exceptions(session, municipality_id, flags)
        result.raised.update(by_ward[municipality_id].raised)
    return by_ward


def _close(session: Session, rows: dict[int, LedgerImport], changes: list[tuple[int, Status, Any]]
           ) -> tuple[dict[int, list[tuple[str, int]]], dict[int, list[Any]]]:
    """Record each instalment's new status and close its issued slips; the slips closed and the payments applied."""
    now = utcnow()
    session.execute(_CLOSE, [{"b_id": assessment_id, "b_ward": row.municipality_id, "b_reason": reason,
                              "b_on": closed_on, "b_channel": channel, "b_import": rows[row.municipality_id].id,
                              "b_now": now}
                             for assessment_id, (reason, closed_on, channel), row in changes])
    slips: dict[int, list[tuple[str, int]]] = defaultdict(list)
    applied: dict[int, list[Any]] = defaultdict(list)
    wards: dict[int, list[int]] = defaultdict(list)
    for assessment_id, _, row in changes:
        wards[row.municipality_id].append(assessment_id)
    for ward, ids in sorted(wards.items()):
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            for assessment_id, number, reissue in session.execute(
                    update(_slips).where(_slips.c.municipality_id == ward, _slips.c.assessment_id.in_(chunk),
                                         _slips.c.status == "issued")
                    .values(status="closed").returning(_slips.c.assessment_id, _slips.c.number, _slips.c.reissue)):
                slips[assessment_id].append((number, reissue))
            for row in session.execute(_APPLIED.where(_payments.c.municipality_id == ward,
                                                      _payments.c.assessment_id.in_(chunk))):
                applied[row.assessment_id].append(row)
    return slips, applied


_CLOSE = (update(_assessments).where(_assessments.c.id == bindparam("b_id"),
                                     _assessments.c.municipality_id == bindparam("b_ward"))
          .values(closed_reason=bindparam("b_reason"), closed_on=bindparam("b_on"),
                  closed_channel=bindparam("b_channel"), closed_import_id=bindparam("b_import"),
                  updated_at=bindparam("b_now")))
# A payment the gateway applied to an instalment, with the slip it came through.
_APPLIED = (select(_payments.c.id, _payments.c.assessment_id, _payments.c.amount, _slips.c.number)
            .join(_slips, on_ward(_payments, "slip_id", _slips)).where(_payments.c.applied)
            .order_by(_payments.c.id))


def _close_events(assessment_id: int, status: Status, row: Any, slips: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """The instalment's close (or its correction) and each slip it closed, as events."""
    reason, closed_on, channel = status
    data: dict[str, Any] = {"reason": reason, "closed_on": closed_on.isoformat(), "channel": channel}
    if row.closed_reason is not None:
        data["before"] = {"reason": row.closed_reason, "closed_on": _iso(row.closed_on), "channel": row.closed_channel}
    events = [dict(kind="assessment.closed" if row.closed_reason is None else "assessment.close_changed",
                   subject_type="assessment", subject_id=str(assessment_id), municipality_id=row.municipality_id,
                   data=data)]
    return events + [dict(kind="slip.closed", subject_type="slip", subject_id=f"{number}-{reissue}",
                          municipality_id=row.municipality_id, data={"reason": reason})
                     for number, reissue in slips]


def _lock(session: Session, wards: dict[int, list[int]]) -> dict[int, Any]:
    """Lock each ward's instalments (in id order, as a settlement locks one), then read their recorded status."""
    a = _assessments.c
    current: dict[int, Any] = {}
    for ward, ids in sorted(wards.items()):
        assessment_ids = sorted(set(ids))
        for start in range(0, len(assessment_ids), CHUNK):
            chunk = assessment_ids[start:start + CHUNK]
            session.execute(select(a.id).where(a.municipality_id == ward, a.id.in_(chunk)).order_by(a.id)
                            .with_for_update()).all()
            for row in session.execute(select(a.id, a.municipality_id, a.closed_reason, a.closed_on,
                                              a.closed_channel).where(a.municipality_id == ward, a.id.in_(chunk))):
                current[row.id] = row
    return current


def _applied_payment_flag(payment: Any, status: Status) -> dict[str, Any]:
    """The exception to raise on a payment the gateway had applied to an instalment the core system now closes.

    Paid elsewhere: the core system holds two payments (`double_payment`). Cancelled: it holds
    a payment of a claim that no longer stands (`payment_on_void_slip`). Either way the core
    system decides 充当 or 還付; nothing is refunded here.
    """
    reason, closed_on, channel = status
    if reason == "paid_elsewhere":
        kind, why = "double_payment", (f"the core system reports the instalment paid elsewhere ({channel}) on "
                                       f"{closed_on}; it also holds this payment the gateway applied")
    else:
        kind, why = "payment_on_void_slip", (f"the core system cancelled the claim on {closed_on}; it holds this "
                                             "payment the gateway applied")
    return dict(kind=kind, subject_key=f"payment:{payment.id}", business_date=closed_on, amount=payment.amount,
                slip_number=payment.number, payment_id=payment.id,
                details={"reason": why, "closed_reason": reason, "closed_on": closed_on.isoformat(),
                         "channel": channel})


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
