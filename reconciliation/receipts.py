"""The receipts feed (収納データ) for the core system: the journal's records, in files sent in sequence.

Every money event writes its records into the journal (`gateway.services.journal`) in its
own transaction; this module only sends them. `export_next` takes every record not sent
yet, whatever its business date, into the next file of the municipality's sequence (1, 2,
...; the database refuses a number twice) and keeps the file's bytes, so that `resend`
gives a sent file again byte for byte; a file is never rewritten. `export_receipts` writes
the records of one business date for review, outside the sequence.

A record's values are read when its file is written (the claim's key, fund, fiscal year,
the remittance date known then) and frozen in the file; `booked_fiscal_year` follows the
attribution table of `domain.fiscal` with the ward's closing cut-off. Handing a double
payment's overpayment record to the core system (for 充当 or 還付) closes its exception.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, time
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Time, cast, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from domain.calendar import TOKYO
from domain.eltax import split_paid
from domain.fiscal import booked_fiscal_year, fiscal_year_of
from domain.layouts import Layout
from gateway.db import transaction, utcnow
from gateway.errors import Conflict, NotFound, ReceiptsNotWritable
from gateway.models import (
    AgencyReport,
    Assessment,
    FundType,
    Municipality,
    OutboundFile,
    Payment,
    ReceiptQueue,
    ReceiptRecord,
    ReconException,
    Refund,
    receipt_claims,
    table,
)
from gateway.models.base import on_ward
from gateway.services.events import record_event
from reconciliation import outbound
from reconciliation.outbound import ExportResult

# The file mechanics shared with the counter revenue feed, importable from here as before.
from reconciliation.outbound import write_atomically as write_atomically
from reconciliation.outbound import write_export as write_export

LAYOUT_DIR = Path(__file__).parent / "layouts"
DEFAULT_LAYOUT = "receipts-csv"
FEED = "receipts"
_records, _queue = table(ReceiptRecord), table(ReceiptQueue)
SERIALIZATION_FAILURE = "40001"  # PostgreSQL: a concurrent export's transaction could not be serialised with this one
HANDED_OVER = "handed_to_core_system"  # the resolution of a double payment's exception once sent

# What each record of a layout may name; a layout leaves fields out or reorders them.
RECORD_FIELDS: dict[str, frozenset[str]] = {
    "header": frozenset({"sequence", "created_on", "municipality_code"}),
    "data": frozenset({"sequence", "record_id", "record_kind", "reverses", "municipality_code", "assessment_id",
                       "fund_code", "fiscal_year", "installment", "amount", "principal", "late_fee", "dunning_fee",
                       "paid_on", "paid_time", "remitted_on", "booked_fiscal_year", "channel", "reason"}),
    "trailer": frozenset({"record_count", "total_amount", "reversal_count", "reversal_amount"}),
    "end": frozenset(),
}
RECEIPT_FIELDS = RECORD_FIELDS["data"]


def record_id(municipality_code: str, record: int) -> str:
    """A record's id, unique forever: the municipality code and the journal's id (`131075-000000012345`)."""
    return f"{municipality_code}-{record:012d}"


@dataclass(frozen=True)
class Receipts:
    """Records as the file shows them, a column each (a million records are a few lists, not a million objects).

    `assessment_id` is the core system's key (Assessment.source_key), None for unidentified
    money and counter sales; `fiscal_year` the claim's; `amount` public revenue only, never
    the system-usage fee, of which `late_fee` and `dunning_fee` (domain.eltax.split_paid) are
    parts; `paid_on` and `paid_time` Asia/Tokyo; `payment_id` is not in the file (what a
    double payment's exception is about).
    """

    id: Sequence[int]
    kind: Sequence[str]
    reverses: Sequence[int | None]
    assessment_id: Sequence[str | None]
    fund_code: Sequence[str | None]
    fiscal_year: Sequence[int | None]
    installment: Sequence[int | None]
    amount: Sequence[int]
    late_fee: Sequence[int]
    dunning_fee: Sequence[int]
    paid_on: Sequence[date]
    paid_time: Sequence[time]
    remitted_on: Sequence[date | None]
    booked_fiscal_year: Sequence[int]
    channel: Sequence[str]
    reason: Sequence[str | None]
    payment_id: Sequence[int | None]

    def __len__(self) -> int:
        return len(self.id)

    @property
    def total(self) -> int:
        """The records' amounts as they count: a reversal takes away."""
        return sum(self.amount) - 2 * self.reversal_amount

    @property
    def reversal_amount(self) -> int:
        return sum(amount for kind, amount in zip(self.kind, self.amount, strict=True) if kind == "reversal")

    @property
    def reversal_count(self) -> int:
        return self.kind.count("reversal")

    def columns(self, municipality_code: str, sequence: int) -> dict[str, Sequence[Any] | outbound.Same]:
        """The records' fields by their layout names."""
        prefix = f"{municipality_code}-"
        additions = any(self.late_fee) or any(self.dunning_fee)
        return {"sequence": outbound.Same(sequence), "record_id": list(map(f"{prefix}{{:012d}}".format, self.id)),
                "record_kind": self.kind, "municipality_code": outbound.Same(municipality_code),
                "reverses": [None if r is None else f"{prefix}{r:012d}" for r in self.reverses],
                "assessment_id": self.assessment_id, "fund_code": self.fund_code, "fiscal_year": self.fiscal_year,
                "installment": self.installment, "amount": self.amount,
                "principal": list(map(operator.sub, self.amount, map(operator.add, self.late_fee, self.dunning_fee)))
                if additions else self.amount,
                "late_fee": self.late_fee, "dunning_fee": self.dunning_fee, "paid_on": self.paid_on,
                "paid_time": self.paid_time, "remitted_on": self.remitted_on,
                "booked_fiscal_year": self.booked_fiscal_year, "channel": self.channel, "reason": self.reason}

    def overpaid_payments(self) -> list[int]:
        """The payments of the overpayment records, each once, in order."""
        return sorted({payment for kind, payment in zip(self.kind, self.payment_id, strict=True)
                       if kind == "overpayment" and payment is not None})


def load_receipts_layout(name_or_path: str) -> Layout:
    """Load a shipped receipts layout by name, or a ward's own from a .toml path.

    Raises LayoutError for an unknown name, a broken table, or a field receipts do not have.
    """
    return outbound.load_feed_layout(name_or_path, LAYOUT_DIR, "receipts-", RECORD_FIELDS, what="receipts")


def render_receipts(layout: Layout, municipality_code: str, receipts: Receipts, *, sequence: int,
                    created_on: date) -> bytes:
    """The file's bytes; the same arguments always give the same bytes.

    Raises ReceiptsNotWritable when a value would not read back unchanged (a layout that
    cuts it, overflows or cannot encode it): a receipt file must never post a wrong value.
    """
    blocks = [outbound.Block("data", receipts.columns(municipality_code, sequence), len(receipts))]
    if layout.format == "fixed":
        header = {"sequence": sequence, "created_on": created_on, "municipality_code": municipality_code}
        trailer = {"record_count": len(receipts), "total_amount": receipts.total,
                   "reversal_count": receipts.reversal_count, "reversal_amount": receipts.reversal_amount}
        blocks = [outbound.Block("header", {k: [v] for k, v in header.items()}, 1), *blocks,
                  outbound.Block("trailer", {k: [v] for k, v in trailer.items()}, 1), outbound.Block("end", {}, 1)]
    return outbound.encode_blocks(layout, blocks, what="receipts", error=ReceiptsNotWritable)


def _result(layout: Layout, data: bytes, receipts: Receipts, sequence: int) -> ExportResult:
    return outbound.result(layout, data, len(receipts), receipts.total, sequence)


def _municipality(session: Session, municipality_code: str) -> tuple[int, str]:
    found = session.execute(select(Municipality.id, Municipality.closing_cutoff)
                            .where(Municipality.code == municipality_code)).first()
    if found is None:
        raise NotFound(f"municipality {municipality_code} is not configured")
    return found.id, found.closing_cutoff


def export_receipts(session: Session, municipality_code: str, business_date: date,
                    layout: Layout | str = DEFAULT_LAYOUT) -> ExportResult:
    """The records of one business date (Asia/Tokyo), sent or not, for review: outside the sequence (0).

    Read-only and deterministic. Raises NotFound for an unknown municipality, LayoutError for
    an unusable layout, ReceiptsNotWritable (see render_receipts).
    """
    if isinstance(layout, str):
        layout = load_receipts_layout(layout)
    municipality_id, cutoff = _municipality(session, municipality_code)
    receipts = receipts_where(session, cutoff, _records.c.municipality_id == municipality_id,
                              _records.c.business_date == business_date)
    data = render_receipts(layout, municipality_code, receipts, sequence=0, created_on=business_date)
    return _result(layout, data, receipts, 0)


def export_next(session: Session, municipality_code: str, layout: Layout | str = DEFAULT_LAYOUT, *,
                actor: str, today: date | None = None) -> ExportResult | None:
    """The next file of the sequence: every record not sent yet. None, nothing written, when there is none.

    The records are claimed, the file kept and the double payments handed over in one
    transaction: a failure sends nothing, and two exports at once cannot both take a
    number (the second fails with Conflict `export_in_progress`; run it again).
    """
    if isinstance(layout, str):
        layout = load_receipts_layout(layout)
    municipality_id, cutoff = _municipality(session, municipality_code)
    session.rollback()
    try:
        with transaction(session):
            sent = outbound.new_file(session, municipality_id, FEED, layout.name, actor)
            sequence = sent.sequence
            with outbound.bulk():
                receipts = _claim(session, municipality_id, sent.id, cutoff)
                if not receipts:
                    session.rollback()
                    return None
                data = render_receipts(layout, municipality_code, receipts, sequence=sequence,
                                       created_on=today or utcnow().astimezone(TOKYO).date())
            with outbound.packing(data) as packed:  # hashed and compressed beside the hand-over's statements
                handed = _hand_over_double_payments(session, municipality_id, receipts, actor)
            result = ExportResult(data, len(receipts), receipts.total, packed.sha256, layout.name, sequence)
            outbound.keep(sent, result, content=packed.content)
            record_event(session, "receipts.exported", "outbound_file", sent.id, municipality_id=municipality_id,
                         actor=actor, data={"sequence": sequence, "records": result.count, "total": result.total,
                                            "sha256": result.sha256, "handed_over": handed})
    except (IntegrityError, OperationalError) as exc:
        if isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) != SERIALIZATION_FAILURE:
            raise
        raise Conflict("another export took this file number or these records at the same moment; "
                       "run the export again", code="export_in_progress") from None
    return result


def _hand_over_double_payments(session: Session, municipality_id: int, receipts: Receipts, actor: str) -> int:
    """Close the open double_payment exceptions of the overpayments sent without a provider refund.

    The core system decides 充当 or 還付 on them now; the count closed.
    """
    sent = receipts.overpaid_payments()
    refunding = select(Refund.payment_id).where(Refund.municipality_id == municipality_id)
    closed = 0
    for start in range(0, len(sent), 5_000):
        result = session.execute(
            update(ReconException)
            .where(ReconException.municipality_id == municipality_id, ReconException.kind == "double_payment",
                   ReconException.status == "open",
                   ReconException.payment_id.in_(sent[start:start + 5_000]),
                   ReconException.payment_id.not_in(refunding))
            .values(status="resolved", resolution=HANDED_OVER, resolved_by=actor[:100], resolved_at=utcnow(),
                    resolution_note="sent to the core system as an overpayment for 充当 or 還付")
            .execution_options(synchronize_session=False))
        closed += int(result.rowcount)  # type: ignore[attr-defined]
    return closed


def resend(session: Session, municipality_code: str, sequence: int) -> ExportResult:
    """File `sequence` again, byte for byte as it was sent. Raises NotFound for a number never sent."""
    municipality_id, _ = _municipality(session, municipality_code)
    return outbound.kept_file(session, municipality_id, FEED, sequence, error=ReceiptsNotWritable,
                              name=f"receipts file {sequence} of municipality {municipality_code}")


def sent_files(session: Session, municipality_id: int, feed: str = FEED) -> list[OutboundFile]:
    """The files sent, newest first (without loading their bytes)."""
    return outbound.sent_files(session, municipality_id, feed)


def _claim(session: Session, municipality_id: int, file_id: int, cutoff: str) -> Receipts:
    """Take the municipality's queue of records not sent yet: empty the queue of them, then read them.

    On PostgreSQL the queue is emptied first into `receipt_claims` (the ids taken, under the
    file's id), then the records are read joined to it: the big read is a plain SELECT, which
    PostgreSQL runs in parallel (a data-modifying statement forbids that; a temporary table
    would too, its workers cannot read it), and a record queued by a payment that commits
    meanwhile stays queued for the next file. Read committed, not a snapshot: the export's own
    audit event is chained at commit behind events other transactions committed meanwhile (a
    repeatable-read snapshot would fail on the chain's head). A second export at the same moment
    waits on the queue's rows and takes none of them. The claimed ids are deleted before the
    commit. On SQLite the caller holds the write lock (the file's row is written first).
    """
    queued = select(_queue.c.record_id).where(_queue.c.municipality_id == municipality_id)
    if session.get_bind().dialect.name != "postgresql":
        receipts = receipts_where(session, cutoff, _records.c.id.in_(queued))
        session.execute(delete(_queue).where(_queue.c.municipality_id == municipality_id))
        return receipts
    # A day's records joined in memory: hashes and the sort by id would spill to disk at the default.
    session.execute(text("SET LOCAL work_mem = '256MB'"))
    claims = receipt_claims.name
    session.execute(text(f"WITH taken AS (DELETE FROM {_queue.name} WHERE municipality_id = :municipality "
                         f"RETURNING record_id) INSERT INTO {claims} (municipality_id, outbound_file_id, record_id) "
                         f"SELECT :municipality, :file, record_id FROM taken"),
                    {"municipality": municipality_id, "file": file_id})
    # The planner learns how many were taken (the transaction's own rows count): a parallel hash
    # join for a day's million, an index lookup for a handful. ANALYZE holds the table's
    # statistics lock to the commit, so exports of two municipalities take turns here.
    session.execute(text(f"ANALYZE {claims}"))
    claimed = select(receipt_claims.c.record_id).where(receipt_claims.c.outbound_file_id == file_id)
    receipts = receipts_where(session, cutoff, _records.c.municipality_id == municipality_id,
                              _records.c.id.in_(claimed))
    session.execute(delete(receipt_claims).where(receipt_claims.c.municipality_id == municipality_id,
                                                 receipt_claims.c.outbound_file_id == file_id))
    return receipts


def receipts_where(session: Session, cutoff: str, *where: Any) -> Receipts:
    """The journal's records matching `where`, in journal order.

    PostgreSQL gives the times and dates in Asia/Tokyo itself, and its rows are read from the
    driver's cursor (binary, no result objects: a million rows through SQLAlchemy's cost
    seconds); on SQLite they are converted here.
    """
    r = _records
    claim_fund, sale_fund = aliased(FundType), aliased(FundType)
    postgresql = session.get_bind().dialect.name == "postgresql"
    when: list[Any]
    if postgresql:
        local = func.timezone(TOKYO.key, r.c.paid_at)  # timestamp without time zone, Tokyo's wall clock
        when = [cast(local, Date), cast(func.date_trunc("second", local), Time),
                func.coalesce(AgencyReport.remittance_on, cast(func.timezone(TOKYO.key, Payment.remitted_at), Date))]
    else:
        when = [r.c.paid_at, AgencyReport.remittance_on, Payment.remitted_at]
    statement = (
        select(r.c.id, r.c.kind, r.c.reverses_id, Assessment.source_key,
               func.coalesce(claim_fund.code, sale_fund.code).label("fund_code"), Assessment.fiscal_year,
               Assessment.installment, Assessment.due_date, Assessment.amount.label("billed"),
               Assessment.late_fee, Assessment.dunning_fee, r.c.amount, r.c.channel, r.c.reason, r.c.payment_id,
               *when)
        .select_from(r)
        .outerjoin(Assessment, on_ward(r, "assessment_id", Assessment))
        .outerjoin(claim_fund, on_ward(Assessment, "fund_type_id", claim_fund))
        .outerjoin(sale_fund, on_ward(r, "fund_type_id", sale_fund))
        .outerjoin(AgencyReport, on_ward(r, "agency_report_id", AgencyReport))
        .outerjoin(Payment, on_ward(r, "payment_id", Payment))
        .where(*where).order_by(r.c.id))
    rows: Sequence[Sequence[Any]]
    if postgresql:
        compiled = statement.compile(dialect=session.get_bind().dialect)
        with session.connection().connection.driver_connection.cursor(binary=True) as cursor:  # type: ignore[union-attr]
            cursor.execute(str(compiled), compiled.params)
            rows = cursor.fetchall()
    else:
        rows = session.execute(statement).all()
    if not rows:
        return Receipts(*([] for _ in fields(Receipts)))
    (ids, kinds, reverses, keys, funds, claim_years, installments, due_dates, billed, late_fees, dunning_fees,
     amounts, channels, reasons, payments, *when_columns) = zip(*rows, strict=True)
    paid_on: Sequence[date]
    paid_time: Sequence[time]
    remitted_on: Sequence[date | None]
    if postgresql:
        paid_on, paid_time, remitted_on = when_columns
    else:
        paid_at, remittance_on, remitted_at = when_columns
        local_times = [at.astimezone(TOKYO) for at in paid_at]
        paid_on = [at.date() for at in local_times]
        paid_time = [at.time().replace(microsecond=0, tzinfo=None) for at in local_times]
        remitted_on = [on or (None if at is None else at.astimezone(TOKYO).date())
                       for on, at in zip(remittance_on, remitted_at, strict=True)]
    # A counter sale (its own claim, of the day) or unidentified money (no claim) books to the year received.
    attributed = {(due, paid): fiscal_year_of(paid) if due is None else booked_fiscal_year(due, paid, cutoff)
                  for due, paid in set(zip(due_dates, paid_on, strict=True))}
    booked_years = list(map(attributed.__getitem__, zip(due_dates, paid_on, strict=True)))
    fiscal_years: Sequence[int | None] = claim_years
    if None in due_dates:  # a sale is of its fund's year received; unidentified money is of none
        fiscal_years = [year if due is not None else (None if fund is None else book)
                        for year, due, fund, book in zip(claim_years, due_dates, funds, booked_years, strict=True)]
    late, dunning = [0] * len(ids), [0] * len(ids)
    if any(late_fees) or any(dunning_fees):  # overdue claims' additions (the rest: all principal)
        for n, (amount, bill, fee, charge) in enumerate(zip(amounts, billed, late_fees, dunning_fees, strict=True)):
            if fee or charge:
                _, late[n], dunning[n] = split_paid(amount, bill, fee or 0, charge or 0)
    return Receipts(ids, kinds, reverses, keys, funds, fiscal_years, installments, amounts, late, dunning, paid_on,
                    paid_time, remitted_on, booked_years, channels, reasons, payments)
