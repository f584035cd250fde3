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

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
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
    table,
)
from gateway.services.events import record_event
from reconciliation import outbound
from reconciliation.outbound import ExportResult, encode_records

# The file mechanics shared with the counter revenue feed, importable from here as before.
from reconciliation.outbound import write_atomically as write_atomically
from reconciliation.outbound import write_export as write_export

LAYOUT_DIR = Path(__file__).parent / "layouts"
DEFAULT_LAYOUT = "receipts-csv"
FEED = "receipts"
_records, _queue = table(ReceiptRecord), table(ReceiptQueue)
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


class Receipt(NamedTuple):
    """One record as the file shows it (a tuple: a million of them are made for one file)."""

    id: int
    kind: str
    reverses: int | None
    assessment_id: str | None  # the core system's key (Assessment.source_key); None: unidentified, a sale
    fund_code: str | None
    fiscal_year: int | None  # of the assessment
    installment: int | None
    amount: int  # public revenue only, yen; never the system-usage fee
    paid_at: datetime  # Asia/Tokyo
    remitted_on: date | None
    booked_fiscal_year: int
    channel: str
    reason: str | None
    late_fee: int = 0  # of `amount` (domain.eltax.split_paid); the rest is principal
    dunning_fee: int = 0
    payment_id: int | None = None  # not in the file: what a double payment's exception is about

    @property
    def signed(self) -> int:
        """The amount as it counts: a reversal takes away."""
        return -self.amount if self.kind == "reversal" else self.amount

    def values(self, municipality_code: str, sequence: int) -> dict[str, Any]:
        """The record's fields by their layout names."""
        local = self.paid_at
        return {"sequence": sequence, "record_id": record_id(municipality_code, self.id), "record_kind": self.kind,
                "reverses": None if self.reverses is None else record_id(municipality_code, self.reverses),
                "municipality_code": municipality_code, "assessment_id": self.assessment_id,
                "fund_code": self.fund_code, "fiscal_year": self.fiscal_year, "installment": self.installment,
                "amount": self.amount, "principal": self.amount - self.late_fee - self.dunning_fee,
                "late_fee": self.late_fee, "dunning_fee": self.dunning_fee,
                "paid_on": local.date(), "paid_time": local.time().replace(microsecond=0, tzinfo=None),
                "remitted_on": self.remitted_on, "booked_fiscal_year": self.booked_fiscal_year,
                "channel": self.channel, "reason": self.reason}


def load_receipts_layout(name_or_path: str) -> Layout:
    """Load a shipped receipts layout by name, or a ward's own from a .toml path.

    Raises LayoutError for an unknown name, a broken table, or a field receipts do not have.
    """
    return outbound.load_feed_layout(name_or_path, LAYOUT_DIR, "receipts-", RECORD_FIELDS, what="receipts")


def render_receipts(layout: Layout, municipality_code: str, receipts: Sequence[Receipt], *, sequence: int,
                    created_on: date) -> bytes:
    """The file's bytes; the same arguments always give the same bytes.

    Raises ReceiptsNotWritable when a value would not read back unchanged (a layout that
    cuts it, overflows or cannot encode it): a receipt file must never post a wrong value.
    """
    data = [r.values(municipality_code, sequence) for r in receipts]
    records: list[tuple[str, dict[str, Any]]] = [("data", values) for values in data]
    if layout.format == "fixed":
        header = {"sequence": sequence, "created_on": created_on, "municipality_code": municipality_code}
        reversals = [r.amount for r in receipts if r.kind == "reversal"]
        trailer = {"record_count": len(data), "total_amount": sum(r.signed for r in receipts),
                   "reversal_count": len(reversals), "reversal_amount": sum(reversals)}
        records = [(kind, values) for kind, values in
                   [("header", header), *records, ("trailer", trailer), ("end", {})] if kind in layout.records]
    return encode_records(layout, records, what="receipts", error=ReceiptsNotWritable)


def _result(layout: Layout, data: bytes, receipts: Sequence[Receipt], sequence: int) -> ExportResult:
    return outbound.result(layout, data, len(receipts), sum(r.signed for r in receipts), sequence)


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
    receipts = receipts_where(session, cutoff, _records, _records.c.municipality_id == municipality_id,
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
            receipts = _claim(session, municipality_id, cutoff)
            if not receipts:
                session.rollback()
                return None
            data = render_receipts(layout, municipality_code, receipts, sequence=sequence,
                                   created_on=today or utcnow().astimezone(TOKYO).date())
            result = _result(layout, data, receipts, sequence)
            outbound.keep(sent, result)
            handed = _hand_over_double_payments(session, receipts, actor)
            record_event(session, "receipts.exported", "outbound_file", sent.id, municipality_id=municipality_id,
                         actor=actor, data={"sequence": sequence, "records": result.count, "total": result.total,
                                            "sha256": result.sha256, "handed_over": handed})
    except IntegrityError:
        raise Conflict("another export took this file number at the same moment; run the export again",
                       code="export_in_progress") from None
    return result


def _hand_over_double_payments(session: Session, receipts: Sequence[Receipt], actor: str) -> int:
    """Close the open double_payment exceptions of the overpayments sent without a provider refund.

    The core system decides 充当 or 還付 on them now; the count closed.
    """
    sent = sorted({r.payment_id for r in receipts if r.kind == "overpayment" and r.payment_id is not None})
    refunding = select(Refund.payment_id)
    closed = 0
    for start in range(0, len(sent), 5_000):
        result = session.execute(
            update(ReconException)
            .where(ReconException.kind == "double_payment", ReconException.status == "open",
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


def _claim(session: Session, municipality_id: int, cutoff: str) -> list[Receipt]:
    """Take the municipality's queue of records not sent yet and read them; on PostgreSQL in one statement.

    On SQLite the caller holds the write lock already (the file's row is written first), so
    no record can be queued between the read and the delete.
    """
    take = delete(_queue).where(_queue.c.municipality_id == municipality_id)
    if session.get_bind().dialect.name == "postgresql":
        taken = take.returning(_queue.c.record_id).cte("taken")
        return receipts_where(session, cutoff, _records, _records.c.id.in_(select(taken.c.record_id)))
    queued = select(_queue.c.record_id).where(_queue.c.municipality_id == municipality_id)
    receipts = receipts_where(session, cutoff, _records, _records.c.id.in_(queued))
    session.execute(take)
    return receipts


def receipts_where(session: Session, cutoff: str, records: Any = None, *where: Any) -> list[Receipt]:
    """The records of `records` (the journal, or a selection of its rows) matching `where`, in journal order."""
    r = _records if records is None else records
    claim_fund, sale_fund = aliased(FundType), aliased(FundType)
    rows = session.execute(
        select(r.c.id, r.c.kind, r.c.reverses_id, Assessment.source_key,
               func.coalesce(claim_fund.code, sale_fund.code).label("fund_code"), Assessment.fiscal_year,
               Assessment.installment, Assessment.due_date, Assessment.amount.label("billed"),
               Assessment.late_fee, Assessment.dunning_fee, r.c.amount, r.c.paid_at,
               AgencyReport.remittance_on, Payment.remitted_at, r.c.channel, r.c.reason, r.c.payment_id)
        .select_from(r)
        .outerjoin(Assessment, Assessment.id == r.c.assessment_id)
        .outerjoin(claim_fund, claim_fund.id == Assessment.fund_type_id)
        .outerjoin(sale_fund, sale_fund.id == r.c.fund_type_id)
        .outerjoin(AgencyReport, AgencyReport.id == r.c.agency_report_id)
        .outerjoin(Payment, Payment.id == r.c.payment_id)
        .where(*where).order_by(r.c.id)).all()
    out = []
    attributed: dict[tuple[date, date], int] = {}
    for row in rows:
        paid_at = row.paid_at.astimezone(TOKYO)
        paid_on = paid_at.date()
        remitted = row.remittance_on or (None if row.remitted_at is None
                                         else row.remitted_at.astimezone(TOKYO).date())
        if row.due_date is None:  # a counter sale (its own claim, of the day) or unidentified money
            booked = fiscal_year_of(paid_on)
            fiscal_year = None if row.fund_code is None else booked
        else:
            key = (row.due_date, paid_on)
            booked = attributed.get(key) or attributed.setdefault(key, booked_fiscal_year(*key, cutoff))
            fiscal_year = row.fiscal_year
        _, late_fee, dunning_fee = split_paid(row.amount, row.billed, row.late_fee or 0, row.dunning_fee or 0)
        out.append(Receipt(row.id, row.kind, row.reverses_id, row.source_key, row.fund_code, fiscal_year,
                           row.installment, row.amount, paid_at, remitted, booked, row.channel, row.reason,
                           late_fee, dunning_fee, row.payment_id))
    return out

