"""Receipts (消込データ) for the core system: one per applied payment of an assessment.

A business date's receipts are the applied payments of assessments accepted on that date in
Asia/Tokyo (a payment counts as made when the contractor accepts it). Counter sales have no
assessment and are no receipts; a double payment's second payment is not applied and is no
receipt; the card system-usage fee is not public revenue and never in an amount.

The file is written in a layout table (reconciliation/layouts/*.toml, or a ward's own), and
is a pure function of the database's payments: no clock, ordered by (accepted_at, payment
id), so exporting the same date again writes the same bytes, and each receipt's id is
stable, so the core system posts a re-sent receipt once.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import layouts
from domain.calendar import TOKYO
from domain.layouts import Layout, LayoutError
from gateway.errors import NotFound, ReceiptsNotWritable
from gateway.models import Assessment, FundType, Municipality, Payment

LAYOUT_DIR = Path(__file__).parent / "layouts"
DEFAULT_LAYOUT = "receipts-fixed"

FISCAL_YEAR_START_MONTH = 4  # April to March
CLOSING_PERIOD_END = (5, 31)  # 出納整理期間: (month, day) up to which the previous year still books

# What each record of a layout may name; a layout leaves fields out or reorders them.
RECORD_FIELDS: dict[str, frozenset[str]] = {
    "header": frozenset({"created_on", "municipality_code", "business_date"}),
    "data": frozenset({"receipt_id", "municipality_code", "assessment_id", "fund_code", "fiscal_year",
                       "installment", "amount", "accepted_on", "accepted_time", "booked_fiscal_year", "channel"}),
    "trailer": frozenset({"record_count", "total_amount"}),
    "end": frozenset(),
}
RECEIPT_FIELDS = RECORD_FIELDS["data"]


def fiscal_year_of(day: date) -> int:
    """Return the fiscal year (April to March) that `day` falls in."""
    return day.year if day.month >= FISCAL_YEAR_START_MONTH else day.year - 1


def booked_fiscal_year(assessment_fiscal_year: int, paid_on: date) -> int:
    """Return the fiscal year a receipt books to under the 出納整理期間 rule.

    A payment from 1 April to 31 May of an assessment of the previous fiscal year books to
    that year; anything else (current, older or later assessments) to the payment date's.
    """
    current = fiscal_year_of(paid_on)
    in_closing_period = FISCAL_YEAR_START_MONTH <= paid_on.month and (paid_on.month, paid_on.day) <= CLOSING_PERIOD_END
    if in_closing_period and assessment_fiscal_year == current - 1:
        return assessment_fiscal_year
    return current


def receipt_id(municipality_code: str, payment_id: int) -> str:
    """Return the receipt's stable id: the municipality code and the payment id (`131075-000000012345`)."""
    return f"{municipality_code}-{payment_id:012d}"


def creation_date(business_date: date) -> date:
    """Return the date the file says it was made: the day after the business date.

    It is the first day on which that date's file can be complete; taken from the clock
    instead, a rerun would not write the same bytes.
    """
    return business_date + timedelta(days=1)


@dataclass(frozen=True)
class Receipt:
    payment_id: int
    assessment_id: str  # the core system's key (Assessment.source_key)
    fund_code: str
    fiscal_year: int  # of the assessment
    installment: int
    amount: int  # public revenue only, yen; never the system-usage fee
    accepted_at: datetime  # timezone-aware
    channel: str

    def values(self, municipality_code: str) -> dict[str, Any]:
        """Return the receipt's fields by their layout names."""
        local = self.accepted_at.astimezone(TOKYO)
        return {"receipt_id": receipt_id(municipality_code, self.payment_id), "municipality_code": municipality_code,
                "assessment_id": self.assessment_id, "fund_code": self.fund_code, "fiscal_year": self.fiscal_year,
                "installment": self.installment, "amount": self.amount, "accepted_on": local.date(),
                "accepted_time": local.time().replace(microsecond=0, tzinfo=None),
                "booked_fiscal_year": booked_fiscal_year(self.fiscal_year, local.date()), "channel": self.channel}


@dataclass(frozen=True)
class ExportResult:
    data: bytes
    count: int
    total: int  # yen
    sha256: str  # hex digest of `data`
    layout: str

    def sidecar(self, filename: str) -> bytes:
        """Return the `sha256sum` line for the file saved as `filename`."""
        return f"{self.sha256}  {filename}\n".encode("ascii")


def load_receipts_layout(name_or_path: str) -> Layout:
    """Load a shipped receipts layout by name, or a ward's own from a .toml path.

    Raises LayoutError for an unknown name, a broken table, or a field receipts do not have.
    """
    try:
        layout = layouts.load_layout(name_or_path, LAYOUT_DIR)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LayoutError(f"layout {name_or_path!r} is not a usable layout table: {exc}") from exc
    for spec in layout.records.values():
        allowed = RECORD_FIELDS.get(spec.name)
        if allowed is None or (layout.format == "csv" and spec.name != "data"):
            raise LayoutError(f"layout {layout.name}: receipts files have no {spec.name!r} records")
        unknown = [f.name for f in spec.fields if f.type != "filler" and f.name not in allowed]
        if unknown:
            raise LayoutError(f"layout {layout.name}: {spec.name} records have no field {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(allowed))}")
    if "data" not in layout.records:
        raise LayoutError(f"layout {layout.name}: no data records")
    return layout


def render_receipts(layout: Layout, municipality_code: str, business_date: date,
                    receipts: Sequence[Receipt]) -> bytes:
    """Return the receipts file's bytes; the same arguments always give the same bytes.

    Raises ReceiptsNotWritable when a value would not read back unchanged (a layout that
    cuts it, overflows or cannot encode it): a receipt file must never post a wrong value.
    """
    data = [r.values(municipality_code) for r in receipts]
    records: list[tuple[str, dict[str, Any]]] = [("data", values) for values in data]
    if layout.format == "fixed":
        header = {"created_on": creation_date(business_date), "municipality_code": municipality_code,
                  "business_date": business_date}
        trailer = {"record_count": len(data), "total_amount": sum(v["amount"] for v in data)}
        records = [(kind, values) for kind, values in
                   [("header", header), *records, ("trailer", trailer), ("end", {})] if kind in layout.records]
    try:
        output = _encode(layout, records)
    except UnicodeEncodeError as exc:
        raise ReceiptsNotWritable(f"layout {layout.name}: {exc.object[exc.start:exc.end]!r} cannot be written "
                                  f"in {layout.encoding}") from None
    _check_reads_back(layout, output, records)
    return output


def _encode(layout: Layout, records: list[tuple[str, dict[str, Any]]]) -> bytes:
    if layout.format == "csv":
        lines = [layouts.csv_header(layout)] if layout.header_line else []
        lines += [layouts.write_csv_line(layout, values) for _, values in records]
        # CRLF, as RFC 4180 and the core systems' Windows tools expect.
        return "".join(line + "\r\n" for line in lines).encode(layout.encoding)
    return b"".join(layouts.encode_fixed(layout, kind, values) + b"\r\n" for kind, values in records)


def _check_reads_back(layout: Layout, output: bytes, written: list[tuple[str, dict[str, Any]]]) -> None:
    if layout.format == "csv" and not written:
        return  # a header alone (or nothing): the engine reads no records from it by design
    records, errors = layouts.read(layout, output)
    problems = [str(e) for e in errors]
    unit = "record" if layout.format == "fixed" else "line"
    if not errors:
        for record, (kind, values) in zip(records, written, strict=True):
            for spec in layout.records[kind].fields:
                if spec.type != "filler" and record.values.get(spec.name) != values.get(spec.name):
                    problems.append(f"{unit} {record.line}, field {spec.name}: {values.get(spec.name)!r} "
                                    f"would be read back as {record.values.get(spec.name)!r}")
    if problems:
        raise ReceiptsNotWritable(f"layout {layout.name} cannot hold these receipts: {problems[0]}",
                                  details={"errors": problems[:20]})


def export_receipts(session: Session, municipality_code: str, business_date: date,
                    layout: Layout | str = DEFAULT_LAYOUT) -> ExportResult:
    """Build the receipts file of one business date (Asia/Tokyo) for one municipality.

    Read-only and deterministic: the same payments give the same bytes. Raises NotFound for
    an unknown municipality, LayoutError for an unusable layout, ReceiptsNotWritable (see
    render_receipts).
    """
    if isinstance(layout, str):
        layout = load_receipts_layout(layout)
    municipality_id = session.scalar(select(Municipality.id).where(Municipality.code == municipality_code))
    if municipality_id is None:
        raise NotFound(f"municipality {municipality_code} is not configured")
    receipts = receipts_of(session, municipality_id, business_date)
    data = render_receipts(layout, municipality_code, business_date, receipts)
    return ExportResult(data, len(receipts), sum(r.amount for r in receipts), hashlib.sha256(data).hexdigest(),
                        layout.name)


def receipts_of(session: Session, municipality_id: int, business_date: date) -> list[Receipt]:
    """Return the receipts of `business_date` (Asia/Tokyo), ordered by (accepted_at, payment id)."""
    start = datetime.combine(business_date, time.min, tzinfo=TOKYO)
    end = start + timedelta(days=1)  # Japan has no daylight saving time
    rows = session.execute(
        select(Payment.id, Assessment.source_key, FundType.code, Assessment.fiscal_year, Assessment.installment,
               Payment.amount, Payment.accepted_at, Payment.channel)
        # The inner join drops counter sales, which have no assessment.
        .join(Assessment, Assessment.id == Payment.assessment_id)
        .join(FundType, FundType.id == Assessment.fund_type_id)
        .where(Payment.municipality_id == municipality_id, Payment.applied.is_(True),
               Payment.accepted_at >= start, Payment.accepted_at < end)
        .order_by(Payment.accepted_at, Payment.id)).all()
    return [Receipt(payment_id, source_key, fund_code, fiscal_year, installment, amount, accepted_at, channel)
            for payment_id, source_key, fund_code, fiscal_year, installment, amount, accepted_at, channel in rows
            if accepted_at is not None]  # always set here: the WHERE compares it


def write_export(result: ExportResult, out: Path) -> Path:
    """Write the file to `out` and its `sha256sum` line to `<out>.sha256`, each atomically.

    Returns the sidecar's path. The file goes first: a reader never finds a sidecar that
    vouches for bytes not yet in place (a stale one simply does not match).
    """
    sidecar = out.with_name(out.name + ".sha256")
    write_atomically(out, result.data)
    write_atomically(sidecar, result.sidecar(out.name))
    return sidecar


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsynced, then renamed."""
    # mkstemp's 0600 is kept: the file holds payment data until the transfer path takes it.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
