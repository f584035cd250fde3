"""A collection agency in sandbox mode: turn store payments into the files it would send.

Timing as in shared/domain/collection-agency-data.md: a 速報 file the next business day, the 確報
5-10 days after payment, the planned remittance about 10 days after payment on a business
day, and payments from 25 December held until the first business days of January. What
each payment's records are (a 速報 only, a 確報 without 速報, a 取消 too) is the caller's
choice, so anomalies can be planted.
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from adapters.agency import AgencyAdapter, ReportKind
from domain import barcode as gs1
from domain import layouts
from domain.calendar import business_day_after


@dataclass(frozen=True)
class StorePayment:
    """A resident paid a slip at a store or in an app."""

    barcode: str
    paid_at: datetime  # the store's local time (Asia/Tokyo), naive or aware
    store_code: str
    chain_code: str  # 3 digits, as in the chain table
    records: tuple[ReportKind, ...] = ("preliminary", "final")  # plant anomalies by leaving some out

    @property
    def amount(self) -> int:
        return int(self.barcode[gs1.AMOUNT_FIELD])


@dataclass(frozen=True)
class Scheduled:
    """One record of one payment, with the business day its file is sent."""

    sent_on: date
    kind: ReportKind
    payment: StorePayment
    remittance_on: date | None


def schedule(payments: Iterable[StorePayment], seed: int = 0) -> list[Scheduled]:
    """When each payment's records are sent, and the remittance date its 確報 names."""
    rng = random.Random(seed)
    out: list[Scheduled] = []
    for payment in payments:
        day = payment.paid_at.date()
        remit = planned_remittance(day)
        for kind in payment.records:
            if kind == "preliminary":
                out.append(Scheduled(business_day_after(day), kind, payment, None))
            elif kind == "final":  # a 確報 announces a remittance still to come
                sent = business_day_after(day, rng.randint(5, 8))
                out.append(Scheduled(sent, kind, payment, max(remit, business_day_after(sent, 1))))
            else:  # a store voids what it reported, a few days later
                out.append(Scheduled(business_day_after(day, 2), kind, payment, None))
    return sorted(out, key=lambda s: (s.sent_on, s.payment.paid_at, s.kind))


def planned_remittance(paid_on: date) -> date:
    """About ten days after payment on a business day; year-end payments wait for January."""
    if paid_on.month == 12 and paid_on.day >= 25:
        return business_day_after(date(paid_on.year + 1, 1, 4), 2)
    return business_day_after(paid_on, 8)


DATA_TYPE_CODES: dict[ReportKind, str] = {"preliminary": "01", "final": "02", "cancel": "03"}


def write_file(adapter: AgencyAdapter, records: list[Scheduled], *, created_on: date, agency_code: str = "00001",
               client_code: str | None = None, client_name: str = "ｽﾐﾀﾞｸ") -> bytes:
    """The file the agency sends on `created_on` in `adapter`'s layout (cp932)."""
    codes = {kind: code for code, kind in adapter.data_types.items()}
    rows = [_row(record, codes, created_on, adapter.layout.format == "fixed") for record in records]
    layout = adapter.layout
    if layout.format == "csv":
        lines = [layouts.write_csv_line(layout, {**row, "barcode": f"EAN{row['barcode']}"}) for row in rows]
        return "".join(line + "\r\n" for line in lines).encode(layout.encoding)
    header = {"created_on": created_on, "agency_code": agency_code,
              "client_code": client_code or adapter.client_code or "00000",
              "client_name": client_name}
    body = [layouts.encode_fixed(layout, "header", header)]
    body += [layouts.encode_fixed(layout, "data", row) for row in rows]
    body.append(layouts.encode_fixed(layout, "trailer", {"record_count": len(rows),
                                                         "total_amount": sum(r["amount"] for r in rows)}))
    body.append(layouts.encode_fixed(layout, "end", {}))
    return b"".join(record + b"\r\n" for record in body)


def _row(record: Scheduled, codes: dict[ReportKind, str], created_on: date, fixed: bool) -> dict[str, object]:
    payment = record.payment
    return {
        "data_type": codes[record.kind], "paid_on": payment.paid_at.date(), "paid_time": payment.paid_at.time(),
        "barcode_kind": "1", "barcode": payment.barcode, "store_code": payment.store_code,
        "customer_segment": "01", "acquired_on": created_on, "accounting_on": created_on,
        # the CSV says 0 where a 速報 has no remittance date yet (domain document, B)
        "remittance_on": record.remittance_on or (None if fixed else "0"),
        "chain_code": payment.chain_code.zfill(6) if fixed else payment.chain_code,
        "stamp_flag": "0", "amount": payment.amount, "chain_name": "", "created_on": created_on,
        "user_field_1": "", "user_field_2": "",
    }


def files_by_day(adapter: AgencyAdapter, scheduled: list[Scheduled], **kwargs: object) -> dict[date, bytes]:
    """One file per sending day, in `adapter`'s layout."""
    by_day: dict[date, list[Scheduled]] = defaultdict(list)
    for record in scheduled:
        by_day[record.sent_on].append(record)
    return {day: write_file(adapter, records, created_on=day, **kwargs)  # type: ignore[arg-type]
            for day, records in sorted(by_day.items())}
