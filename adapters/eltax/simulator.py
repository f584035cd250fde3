"""eLTAX payment data in sandbox mode: turn payments made with the eL番号 into the files the ward receives.

Timing is a sandbox assumption, not eLTAX's published schedule: a day's payments arrive as
one file the next business day, each naming the day 地方税共同機構 remits it, a week of
business days after payment. Which payments there are (a second one, an unknown eL番号, a
wrong amount) is the caller's choice, so anomalies can be planted.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from adapters.eltax import EltaxAdapter, Method
from domain import layouts
from domain.calendar import business_day_after


@dataclass(frozen=True)
class EltaxPaid:
    """A resident paid a slip through eLTAX with its eL番号."""

    el_number: str
    amount: int  # yen
    paid_at: datetime  # Asia/Tokyo local time, naive or aware
    method: Method = "card"
    record_id: str = ""  # eLTAX's id; made from the payment when empty

    @property
    def key(self) -> str:
        if self.record_id:
            return self.record_id
        text = f"{self.el_number}|{self.paid_at.isoformat()}|{self.method}|{self.amount}"
        return "EL" + hashlib.sha256(text.encode()).hexdigest()[:18].upper()


def remittance_on(paid_on: date) -> date:
    """When 地方税共同機構 remits a payment (sandbox: five business days after it)."""
    return business_day_after(paid_on, 5)


def write_file(adapter: EltaxAdapter, payments: Iterable[EltaxPaid], *, remitted: bool = True) -> bytes:
    """The data file in `adapter`'s layout; `remitted=False` leaves the remittance dates out (not known yet)."""
    layout = adapter.layout
    methods = {ours: theirs for theirs, ours in adapter.methods.items()}
    lines = [layouts.csv_header(layout)] if layout.header_line else []
    for p in sorted(payments, key=lambda p: (p.paid_at, p.key)):
        lines.append(layouts.write_csv_line(layout, {
            "record_id": p.key, "el_number": p.el_number, "amount": p.amount, "paid_on": p.paid_at.date(),
            "paid_time": p.paid_at.time().replace(microsecond=0),
            "method": methods[p.method], "remitted_on": remittance_on(p.paid_at.date()) if remitted else None}))
    return "".join(line + "\r\n" for line in lines).encode(layout.encoding)


def files_by_day(adapter: EltaxAdapter, payments: Iterable[EltaxPaid]) -> dict[date, bytes]:
    """One file per day it is received (the business day after payment), oldest first."""
    by_day: dict[date, list[EltaxPaid]] = defaultdict(list)
    for payment in payments:
        by_day[business_day_after(payment.paid_at.date())].append(payment)
    return {day: write_file(adapter, day_payments) for day, day_payments in sorted(by_day.items())}
