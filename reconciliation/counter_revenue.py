"""Counter revenue for financial accounting (財務会計): a daily journal per fee item, fund and tender.

The journal is read from the receipts feed's records (`gateway.services.journal`), which
every counter sale writes when its money is accepted (a receipt per fund of its lines) and
every void or refund when the money goes back (a reversal, on that day): one source for
both feeds, so their figures per day and fund agree. Each record is broken down into its
sale's lines of that fund (fee item, quantity, amount) and the sale's tender (`Sale.brand`);
a reversal gives negative lines on the day of the reversal, never on the sale's day, so a
day once over never changes.

Files go in sequence (`feed='counter_revenue'`) through `reconciliation.outbound`: the next
file holds every closed business day (Asia/Tokyo) after the last file's last day, up to
yesterday; with no line in those days there is no file. The days a file covers are kept in
its `counter_revenue.exported` event (append-only, written in the file's transaction).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.calendar import TOKYO
from domain.layouts import Layout
from gateway.db import transaction, utcnow
from gateway.errors import Conflict, NotFound, RevenueNotWritable
from gateway.models import Event, FeeItem, FundType, Municipality, Payment, ReceiptRecord, Sale, SaleLine
from gateway.models.base import on_ward
from gateway.services.events import record_event
from reconciliation import outbound
from reconciliation.outbound import ExportResult

LAYOUT_DIR = Path(__file__).parent / "layouts"
DEFAULT_LAYOUT = "counter-revenue-csv"
FEED = "counter_revenue"
EXPORTED = "counter_revenue.exported"  # the event of a file sent; its data names the days covered

RECORD_FIELDS: dict[str, frozenset[str]] = {
    "header": frozenset({"sequence", "municipality_code", "first_day", "last_day"}),
    "data": frozenset({"sequence", "municipality_code", "business_date", "fund_code", "account", "revenue_item",
                       "fee_item_code", "fee_item_name", "tender", "count", "amount"}),
    "trailer": frozenset({"line_count", "total_count", "total_amount"}),
    "end": frozenset(),
}


@dataclass(frozen=True)
class RevenueLine:
    """One line of the journal: what a day took (or gave back: negative) for a fee item by a tender."""

    business_date: date
    fund_code: str
    account: str  # 会計
    revenue_item: str  # 款・項・目
    fee_item_code: str
    fee_item_name: str
    tender: str  # the sale's payment type (sales.BRANDS)
    count: int  # items sold; negative for items given back
    amount: int  # yen; negative for money given back

    def values(self, municipality_code: str, sequence: int) -> dict[str, Any]:
        """The line's fields by their layout names."""
        return {"sequence": sequence, "municipality_code": municipality_code, **asdict(self)}


@dataclass(frozen=True)
class SentFile:
    """A counter revenue file sent, with the days it covers."""

    sequence: int
    first_day: date | None
    last_day: date | None
    lines: int
    total: int
    sha256: str
    created_at: datetime
    created_by: str


def load_revenue_layout(name_or_path: str) -> Layout:
    """Load a shipped counter revenue layout by name, or a ward's own from a .toml path.

    Raises LayoutError for an unknown name, a broken table, or a field the journal does not have.
    """
    return outbound.load_feed_layout(name_or_path, LAYOUT_DIR, "counter-revenue-", RECORD_FIELDS,
                                     what="counter revenue")


def _signed(column: Any) -> Any:
    return case((ReceiptRecord.kind == "reversal", -column), else_=column)


def _counter_records(municipality_id: int, first: date | None, last: date) -> list[Any]:
    where = [ReceiptRecord.municipality_id == municipality_id, ReceiptRecord.business_date <= last,
             Payment.sale_id.is_not(None)]
    return where if first is None else [*where, ReceiptRecord.business_date >= first]


def revenue_journal(session: Session, municipality_id: int, first: date | None, last: date) -> list[RevenueLine]:
    """The journal of the business days `first` (None: from the start) to `last`, in file order.

    Raises RevenueNotWritable when a day's counter records and their sales' lines disagree
    for a fund (a record that is not its lines' sum cannot be broken down by fee item).
    """
    rows = session.execute(
        select(ReceiptRecord.business_date, ReceiptRecord.kind, FundType.code, FundType.account,
               FundType.revenue_item, FeeItem.code, FeeItem.name, Sale.brand,
               func.sum(_signed(SaleLine.quantity)), func.sum(_signed(SaleLine.amount)))
        .join(Payment, on_ward(ReceiptRecord, "payment_id", Payment)).join(Sale, on_ward(Payment, "sale_id", Sale))
        .join(SaleLine, on_ward(SaleLine, "sale_id", Sale) & (SaleLine.fund_type_id == ReceiptRecord.fund_type_id))
        .join(FeeItem, on_ward(SaleLine, "item_id", FeeItem))
        .join(FundType, on_ward(SaleLine, "fund_type_id", FundType))
        .where(*_counter_records(municipality_id, first, last))
        .group_by(ReceiptRecord.business_date, ReceiptRecord.kind, FundType.code, FundType.account,
                  FundType.revenue_item, FeeItem.code, FeeItem.name, Sale.brand)).all()
    lines = sorted(((row[0], row[1] == "reversal", RevenueLine(row[0], row[2], row[3], row[4], row[5], row[6], row[7],
                                                  int(row[8]), int(row[9]))) for row in rows),
                   key=lambda r: (r[0], r[2].fund_code, r[2].fee_item_code, r[2].tender, r[1]))
    journal = [line for _, _, line in lines]
    _check_adds_up(session, municipality_id, first, last, journal)
    return journal


def _check_adds_up(session: Session, municipality_id: int, first: date | None, last: date,
                   journal: Sequence[RevenueLine]) -> None:
    recorded = {(day, fund): int(amount) for day, fund, amount in session.execute(
        select(ReceiptRecord.business_date, FundType.code, func.sum(_signed(ReceiptRecord.amount)))
        .join(Payment, on_ward(ReceiptRecord, "payment_id", Payment))
        .join(FundType, on_ward(ReceiptRecord, "fund_type_id", FundType))
        .where(*_counter_records(municipality_id, first, last))
        .group_by(ReceiptRecord.business_date, FundType.code))}
    broken_down: dict[tuple[date, str], int] = {}
    for line in journal:
        key = (line.business_date, line.fund_code)
        broken_down[key] = broken_down.get(key, 0) + line.amount
    wrong = sorted(key for key in recorded.keys() | broken_down.keys()
                   if recorded.get(key, 0) != broken_down.get(key, 0))
    if wrong:
        day, fund = wrong[0]
        raise RevenueNotWritable(f"counter revenue of {day}, fund {fund}: the receipts records hold "
                                 f"{recorded.get(wrong[0], 0):,} yen, the sales' lines "
                                 f"{broken_down.get(wrong[0], 0):,}",
                                 details={"days": [f"{d} {f}" for d, f in wrong[:20]], "day": day.isoformat(),
                                          "fund": fund, "recorded": recorded.get(wrong[0], 0),
                                          "lines": broken_down.get(wrong[0], 0)})


def render_revenue(layout: Layout, municipality_code: str, journal: Sequence[RevenueLine], *, sequence: int,
                   first_day: date | None, last_day: date) -> bytes:
    """The file's bytes; the same arguments always give the same bytes (no clock in them)."""
    records: outbound.Records = [("data", line.values(municipality_code, sequence)) for line in journal]
    if layout.format == "fixed":
        header = {"sequence": sequence, "municipality_code": municipality_code, "first_day": first_day,
                  "last_day": last_day}
        trailer = {"line_count": len(journal), "total_count": sum(line.count for line in journal),
                   "total_amount": sum(line.amount for line in journal)}
        records = [(kind, values) for kind, values in
                   [("header", header), *records, ("trailer", trailer), ("end", {})] if kind in layout.records]
    return outbound.encode_records(layout, records, what="counter revenue lines", error=RevenueNotWritable)


def _result(layout: Layout, data: bytes, journal: Sequence[RevenueLine], sequence: int) -> ExportResult:
    return outbound.result(layout, data, len(journal), sum(line.amount for line in journal), sequence)


def municipality_id_of(session: Session, municipality_code: str) -> int:
    found = session.scalar(select(Municipality.id).where(Municipality.code == municipality_code))
    if found is None:
        raise NotFound(f"municipality {municipality_code} is not configured")
    return found


def _layout(layout: Layout | str) -> Layout:
    return load_revenue_layout(layout) if isinstance(layout, str) else layout


def export_day(session: Session, municipality_code: str, business_date: date,
               layout: Layout | str = DEFAULT_LAYOUT) -> ExportResult:
    """The journal of one business date for review, outside the sequence (0); read-only, nothing marked sent."""
    layout = _layout(layout)
    journal = revenue_journal(session, municipality_id_of(session, municipality_code), business_date, business_date)
    data = render_revenue(layout, municipality_code, journal, sequence=0, first_day=business_date,
                          last_day=business_date)
    return _result(layout, data, journal, 0)


def yesterday() -> date:
    """The last business day that is over (Asia/Tokyo)."""
    return utcnow().astimezone(TOKYO).date() - timedelta(days=1)


def last_day_sent(session: Session, municipality_id: int) -> date | None:
    """The last business day the files sent so far cover; None before the first file."""
    data = session.scalar(select(Event.data).where(Event.municipality_id == municipality_id, Event.kind == EXPORTED)
                          .order_by(Event.id.desc()).limit(1))
    return None if data is None else date.fromisoformat(data["last_day"])


def export_next(session: Session, municipality_code: str, layout: Layout | str = DEFAULT_LAYOUT, *, actor: str,
                through: date | None = None) -> ExportResult | None:
    """The next file of the sequence: every closed day after the last file's, up to `through` (default yesterday).

    None, nothing written, when those days have no line (they are taken by a later file
    then). Safe to run twice. Two exports at once cannot both take a number: the second
    fails with Conflict `export_in_progress`; run it again.
    """
    layout = _layout(layout)
    municipality_id = municipality_id_of(session, municipality_code)
    last = through or yesterday()
    session.rollback()
    try:
        with transaction(session):
            after = last_day_sent(session, municipality_id)
            first = None if after is None else after + timedelta(days=1)
            journal = [] if first is not None and first > last else \
                revenue_journal(session, municipality_id, first, last)
            if not journal:
                return None
            sent = outbound.new_file(session, municipality_id, FEED, layout.name, actor)
            data = render_revenue(layout, municipality_code, journal, sequence=sent.sequence,
                                  first_day=first or journal[0].business_date, last_day=last)
            result = _result(layout, data, journal, sent.sequence)
            outbound.keep(sent, result)
            record_event(session, EXPORTED, "outbound_file", sent.id, municipality_id=municipality_id, actor=actor,
                         data={"sequence": sent.sequence, "first_day": (first or journal[0].business_date).isoformat(),
                               "last_day": last.isoformat(), "lines": result.count, "total": result.total,
                               "sha256": result.sha256})
    except IntegrityError:
        raise Conflict("another export took this file number at the same moment; run the export again",
                       code="export_in_progress") from None
    return result


def resend(session: Session, municipality_code: str, sequence: int) -> ExportResult:
    """File `sequence` again, byte for byte as it was sent. Raises NotFound for a number never sent."""
    municipality_id = municipality_id_of(session, municipality_code)
    return outbound.kept_file(session, municipality_id, FEED, sequence, error=RevenueNotWritable,
                              name=f"counter revenue file {sequence} of municipality {municipality_code}")


def sent_files(session: Session, municipality_id: int) -> list[SentFile]:
    """The counter revenue files sent, newest first, with the days each covers."""
    files = outbound.sent_files(session, municipality_id, FEED)
    days = {event.subject_id: event.data for event in session.scalars(
        select(Event).where(Event.municipality_id == municipality_id, Event.kind == EXPORTED))}
    out = []
    for sent in files:
        covered = days.get(str(sent.id), {})
        out.append(SentFile(sent.sequence, _day(covered.get("first_day")), _day(covered.get("last_day")),
                            sent.record_count, sent.total_amount, sent.sha256, sent.created_at, sent.created_by))
    return out


def written_after_sending(session: Session, municipality_id: int) -> list[tuple[int, date, int]]:
    """Counter records written after the file covering their day was sent: (file, day, yen) each.

    None should exist: the nightly file is written hours after the day's end. One that does
    (a terminal's outcome settled very late) is in no file; staff book it by hand. Shown, not fixed.
    """
    found = []
    for sent in sent_files(session, municipality_id):
        if sent.first_day is None or sent.last_day is None:
            continue
        for day, amount in session.execute(
                select(ReceiptRecord.business_date, func.sum(_signed(ReceiptRecord.amount)))
                .join(Payment, on_ward(ReceiptRecord, "payment_id", Payment))
                .where(*_counter_records(municipality_id, sent.first_day, sent.last_day),
                       ReceiptRecord.created_at > sent.created_at)
                .group_by(ReceiptRecord.business_date).order_by(ReceiptRecord.business_date)):
            found.append((sent.sequence, day, int(amount)))
    return found


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)
