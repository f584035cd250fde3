"""Conservation: every yen the gateway accepted is in the receipts feed once, less what went away.

For each piece of money accepted (a payment through any channel, or agency or eLTAX money
for a slip nobody could find) what should stand in the feed is its amount, less the amount if
it was cancelled (速報取消) and less the public revenue refunded (the system usage fee is
never revenue). What does stand is the sum of its journal records, a reversal taking
away, sent or not yet sent. Per channel the two agree; where they do not, each piece of
money that differs is listed with its yen. Read-only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from domain.calendar import TOKYO
from gateway.errors import NotFound
from gateway.models import AgencyReport, Municipality, Payment, ReceiptQueue, ReceiptRecord

LISTED = 100  # differences listed in full; the rest are counted


@dataclass
class ChannelBalance:
    channel: str
    count: int = 0
    accepted: int = 0  # yen
    cancelled: int = 0
    refunded: int = 0  # public revenue refunded
    sent: int = 0  # net yen of the records in files sent
    unsent: int = 0  # net yen of the records not sent yet

    @property
    def expected(self) -> int:
        return self.accepted - self.cancelled - self.refunded

    @property
    def difference(self) -> int:
        return self.expected - self.sent - self.unsent


@dataclass(frozen=True)
class Difference:
    """A piece of money whose records do not add up to what it should be."""

    subject: str  # payment:12 or agency_report:34
    channel: str
    paid_on: date
    expected: int
    recorded: int

    @property
    def yen(self) -> int:
        return self.expected - self.recorded


@dataclass
class Balance:
    municipality_code: str
    start: date | None
    end: date | None
    channels: list[ChannelBalance] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    unlisted: int = 0  # differences beyond LISTED

    @property
    def difference(self) -> int:
        return sum(c.difference for c in self.channels)

    @property
    def total(self) -> ChannelBalance:
        """Every channel's figures added up."""
        return ChannelBalance("total", *(sum(getattr(c, name) for c in self.channels)
                                         for name in ("count", "accepted", "cancelled", "refunded", "sent", "unsent")))

    def as_dict(self) -> dict[str, Any]:
        return {"municipality_code": self.municipality_code,
                "from": None if self.start is None else self.start.isoformat(),
                "to": None if self.end is None else self.end.isoformat(), "difference": self.difference,
                "channels": [{"channel": c.channel, "count": c.count, "accepted": c.accepted,
                              "cancelled": c.cancelled, "refunded": c.refunded, "expected": c.expected,
                              "sent": c.sent, "unsent": c.unsent, "difference": c.difference}
                             for c in self.channels],
                "differences": [{"subject": d.subject, "channel": d.channel, "paid_on": d.paid_on.isoformat(),
                                 "expected": d.expected, "recorded": d.recorded, "yen": d.yen}
                                for d in self.differences], "unlisted": self.unlisted}


def _moment(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=TOKYO)


def balance(session: Session, municipality_code: str, start: date | None = None, end: date | None = None) -> Balance:
    """The balance of the money accepted from `start` to `end` (business dates, inclusive; None: open)."""
    municipality_id = session.scalar(select(Municipality.id).where(Municipality.code == municipality_code))
    if municipality_id is None:
        raise NotFound(f"municipality {municipality_code} is not configured")
    signed = case((ReceiptRecord.kind == "reversal", -ReceiptRecord.amount), else_=ReceiptRecord.amount)
    queued = ReceiptQueue.record_id.is_not(None)
    sent = func.coalesce(func.sum(case((queued, 0), else_=signed)), 0)
    unsent = func.coalesce(func.sum(case((queued, signed), else_=0)), 0)
    journal = select(ReceiptRecord).outerjoin(ReceiptQueue, (ReceiptQueue.record_id == ReceiptRecord.id)
                                               & (ReceiptQueue.municipality_id == ReceiptRecord.municipality_id))
    by_payment = (journal.with_only_columns(ReceiptRecord.municipality_id, ReceiptRecord.payment_id.label("pid"),
                                            sent.label("sent"), unsent.label("unsent"))
                  .where(ReceiptRecord.municipality_id == municipality_id, ReceiptRecord.payment_id.is_not(None))
                  .group_by(ReceiptRecord.municipality_id, ReceiptRecord.payment_id).subquery())
    by_report = (journal.with_only_columns(ReceiptRecord.municipality_id, ReceiptRecord.agency_report_id.label("rid"),
                                           sent.label("sent"), unsent.label("unsent"))
                 .where(ReceiptRecord.municipality_id == municipality_id, ReceiptRecord.payment_id.is_(None),
                        ReceiptRecord.agency_report_id.is_not(None))
                 .group_by(ReceiptRecord.municipality_id, ReceiptRecord.agency_report_id).subquery())
    cancelled = Payment.status == "cancelled"
    payments = (select(literal("payment").label("kind"), Payment.id, Payment.channel, Payment.accepted_at.label("at"),
                       Payment.amount, case((cancelled, Payment.amount), else_=0).label("cancelled"),
                       case((cancelled, 0), else_=func.least(Payment.refunded_amount, Payment.amount)
                            if session.get_bind().dialect.name == "postgresql"
                            else func.min(Payment.refunded_amount, Payment.amount)).label("refunded"),
                       func.coalesce(by_payment.c.sent, 0).label("sent"),
                       func.coalesce(by_payment.c.unsent, 0).label("unsent"))
                .outerjoin(by_payment, (by_payment.c.pid == Payment.id)
                           & (by_payment.c.municipality_id == Payment.municipality_id))
                .where(Payment.municipality_id == municipality_id, Payment.accepted_at.is_not(None),
                       *([] if start is None else [Payment.accepted_at >= _moment(start)]),
                       *([] if end is None else [Payment.accepted_at < _moment(end + timedelta(days=1))])))
    # Money no slip was found for, as an agency or eLTAX (whose rows carry eLTAX's record id) reported it.
    report_channel = case((AgencyReport.record_id.is_not(None), literal("eltax")), else_=literal("agency"))
    unknown = (select(literal("agency_report").label("kind"), AgencyReport.id, report_channel.label("channel"),
                      AgencyReport.paid_at.label("at"), AgencyReport.amount,
                      case((AgencyReport.cancel_import_id.is_not(None), AgencyReport.amount), else_=0)
                      .label("cancelled"), literal(0).label("refunded"),
                      func.coalesce(by_report.c.sent, 0).label("sent"),
                      func.coalesce(by_report.c.unsent, 0).label("unsent"))
               .outerjoin(by_report, (by_report.c.rid == AgencyReport.id)
                          & (by_report.c.municipality_id == AgencyReport.municipality_id))
               .where(AgencyReport.municipality_id == municipality_id, AgencyReport.payment_id.is_(None),
                      *([] if start is None else [AgencyReport.paid_on >= start]),
                      *([] if end is None else [AgencyReport.paid_on <= end])))
    money = union_all(payments, unknown).subquery()
    totals = session.execute(
        select(money.c.channel, func.count(), func.sum(money.c.amount), func.sum(money.c.cancelled),
               func.sum(money.c.refunded), func.sum(money.c.sent), func.sum(money.c.unsent))
        .group_by(money.c.channel).order_by(money.c.channel)).all()
    report = Balance(municipality_code, start, end, [ChannelBalance(channel, *(int(v) for v in figures))
                                                     for channel, *figures in totals])
    recorded = money.c.sent + money.c.unsent
    off = and_(money.c.amount - money.c.cancelled - money.c.refunded != recorded)
    wrong = session.execute(select(money.c.kind, money.c.id, money.c.channel, money.c.at,
                                   (money.c.amount - money.c.cancelled - money.c.refunded).label("expected"),
                                   recorded.label("recorded"))
                            .where(off).order_by(money.c.at, money.c.id).limit(LISTED + 1)).all()
    report.differences = [Difference(f"{row.kind}:{row.id}", row.channel, row.at.astimezone(TOKYO).date(),
                                     int(row.expected), int(row.recorded)) for row in wrong[:LISTED]]
    if len(wrong) > LISTED:
        report.unlisted = int(session.scalar(select(func.count()).select_from(money).where(off)) or 0) - LISTED
    return report


def balance_text(report: Balance) -> str:
    """The balance as the CLI prints it."""
    span = f"{report.start or 'the first day'} to {report.end or 'today'}"
    lines = [f"municipality {report.municipality_code}, money accepted {span}",
             f"{'channel':<10}{'count':>9}{'accepted':>16}{'cancelled':>14}{'refunded':>14}{'expected':>16}"
             f"{'sent':>16}{'not yet sent':>16}{'difference':>12}"]
    for c in report.channels:
        lines.append(f"{c.channel:<10}{c.count:>9,}{c.accepted:>16,}{c.cancelled:>14,}{c.refunded:>14,}"
                     f"{c.expected:>16,}{c.sent:>16,}{c.unsent:>16,}{c.difference:>12,}")
    lines.append(f"difference: {report.difference:,} yen" + ("" if report.difference or report.differences
                                                              else " (every yen is in the receipts feed once)"))
    for d in report.differences:
        lines.append(f"  {d.subject} ({d.channel}, {d.paid_on}): should stand at {d.expected:,} yen, "
                     f"the records say {d.recorded:,} ({d.yen:+,})")
    if report.unlisted:
        lines.append(f"  ... and {report.unlisted:,} more")
    return "\n".join(lines)
