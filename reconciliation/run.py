"""Reconcile one business date: what the gateway recorded, what providers and agencies report, the ledger.

`reconcile_day` gathers the day's payments (every channel), checks them against the ward's
assessments and the channel's settlement data (domain/matching.toml), raises each exception once
(recon_exceptions is unique per kind and subject) and records the run with its figures.
Run it twice on the same inputs and it changes nothing and writes the same summary.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.base import Capability, PaymentAdapter, SettledPayment
from domain.calendar import TOKYO
from domain.fiscal import fiscal_year_of
from domain.matching import Booked, Settled, match, rules
from gateway.db import transaction, utcnow
from gateway.models import (
    Assessment,
    FundType,
    Payment,
    PaymentAttempt,
    ProviderSettlement,
    ReconException,
    ReconRun,
    SaleLine,
    Slip,
    table,
)
from gateway.models.base import on_ward
from gateway.services.agency_checks import check_agency_data
from gateway.services.events import record_event
from gateway.services.exceptions import raise_exceptions
from gateway.services.payments import other_wards_references
from gateway.services.reference import get_municipality
from gateway.services.sales import daily_close
from gateway.services.settlements import READERS, stored_settlements

PAID = ("succeeded", "partially_refunded", "refunded")


@dataclass
class ReconSummary:
    municipality_code: str
    business_date: date
    payments: int = 0
    received: int = 0  # yen of every payment accepted on the day, revenue or not
    revenue: int = 0  # yen booked to instalments or counter sales
    fees: int = 0  # system usage fees charged on top: never revenue
    by_channel: list[dict[str, Any]] = field(default_factory=list)
    by_fund: list[dict[str, Any]] = field(default_factory=list)  # counter fees included, in the day's year
    unapplied: list[dict[str, Any]] = field(default_factory=list)  # by channel: accepted, not revenue
    raised: Counter[str] = field(default_factory=Counter)  # exceptions new in this run
    open_exceptions: Counter[str] = field(default_factory=Counter)  # of this date, however old
    settlement: dict[str, str] = field(default_factory=dict)  # channel -> how it was checked
    providers: dict[str, dict[str, int]] = field(default_factory=dict)  # adapter -> recorded, settled, fees
    runs: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"municipality": self.municipality_code, "business_date": self.business_date.isoformat(),
                "payments": self.payments, "received": self.received, "revenue": self.revenue, "fees": self.fees,
                "by_channel": self.by_channel, "by_fund": self.by_fund, "unapplied": self.unapplied,
                "open_exceptions": dict(sorted(self.open_exceptions.items())), "settlement": self.settlement,
                "providers": self.providers}


def day_window(business_date: date) -> tuple[datetime, datetime]:
    """The business date in Asia/Tokyo as a UTC interval [start, end)."""
    start = datetime.combine(business_date, time(0), tzinfo=TOKYO)
    return start, start + timedelta(days=1)


def reconcile_day(session: Session, municipality_code: str, business_date: date, *,
                  adapters: Mapping[str, PaymentAdapter] | None = None,
                  agency_fees: Mapping[str, int] | None = None) -> ReconSummary:
    """Reconcile `business_date`; safe to repeat (exceptions once, the run record updated).

    Set-based: the figures are GROUP BY queries and only the payments that are exceptions
    come back to Python, so a day of a million payments costs a few scans of an index range.
    """
    municipality = get_municipality(session, municipality_code)
    summary = ReconSummary(municipality_code, business_date)
    _figures(session, municipality.id, business_date, summary)
    findings = _ledger_findings(session, municipality.id, business_date)
    session.rollback()  # no transaction stays open while terminal providers are asked below
    with transaction(session):
        summary.raised += raise_exceptions(session, municipality.id, findings)
    summary.raised += check_agency_data(session, municipality_code, business_date, fees=agency_fees)
    summary.settlement["agency"] = f"速報/確報 within {rules()['agency'].settle_within_days} business days; " \
                                   "remittances against deposits"
    summary.settlement["eltax"] = "payment data matched on the eL番号; 地方税共同機構's remittances against deposits"
    reports = {name: a.settlement_report(business_date) for name, a in (adapters or {}).items()
               if a.capabilities & Capability.TERMINAL and a.capabilities & Capability.SETTLEMENT_REPORT}
    if reports:
        summary.raised += daily_close(session, municipality.id, business_date, reports).raised
        summary.settlement["emoney"] = "terminal settlement report of the day"
    for name, adapter in (adapters or {}).items():
        if adapter.capabilities & Capability.SETTLEMENT_REPORT and not adapter.capabilities & Capability.TERMINAL:
            report = adapter.settlement_report(business_date)
            summary.providers[name] = _provider_figures(session, municipality.id, business_date, name, report)
            with transaction(session):
                summary.raised += raise_exceptions(session, municipality.id, _settlement_findings(
                    session, municipality.id, business_date, name, report))
            summary.settlement[name] = "the provider's settlement of the day (gross, fees apart)"
    for name in sorted(set(READERS) & set(adapters or {}) - set(summary.settlement)):
        summary.settlement[name] = _check_stored_settlement(session, municipality.id, business_date, name, summary)
    for name in sorted({"stripe", "paypay"} - set(summary.settlement)):
        summary.settlement[name] = "no settlement report from the provider's adapter"
    summary.open_exceptions = Counter(dict(session.execute(
        select(ReconException.kind, func.count()).where(ReconException.municipality_id == municipality.id,
                                                        ReconException.business_date == business_date,
                                                        ReconException.status != "resolved")
        .group_by(ReconException.kind)).all()))
    summary.runs = _record_run(session, municipality.id, summary)
    return summary


def _of_day(municipality_id: int, business_date: date) -> Any:
    start, end = day_window(business_date)
    return and_(Payment.municipality_id == municipality_id, Payment.accepted_at >= start, Payment.accepted_at < end,
                Payment.status.in_(PAID))


def day_figures(session: Session, municipality_code: str, business_date: date) -> ReconSummary:
    """The day's figures as a run would record them, read-only (for a day not reconciled yet)."""
    municipality = get_municipality(session, municipality_code)
    summary = ReconSummary(municipality_code, business_date)
    _figures(session, municipality.id, business_date, summary)
    return summary


def _figures(session: Session, municipality_id: int, business_date: date, summary: ReconSummary) -> None:
    """Counts and yen of the day: all payments; revenue (applied ones) by channel and by fund and year.

    A payment not applied (a double payment, money kept for the core system) is in the totals
    and in `unapplied` by channel, never in revenue. Counter fees are revenue of their lines'
    funds, in the fiscal year of the day.
    """
    of_day = _of_day(municipality_id, business_date)
    payments, received, fees = session.execute(
        select(func.count(), func.coalesce(func.sum(Payment.amount), 0), func.coalesce(func.sum(Payment.fee_amount), 0))
        .where(of_day)).one()
    summary.payments, summary.received, summary.fees = int(payments), int(received), int(fees)
    by_channel = session.execute(
        select(Payment.channel, Payment.applied, func.count(), func.sum(Payment.amount), func.sum(Payment.fee_amount))
        .where(of_day).group_by(Payment.channel, Payment.applied).order_by(Payment.channel)).all()
    summary.by_channel = [{"channel": channel, "count": int(n), "amount": int(amount), "fee": int(fee)}
                          for channel, applied, n, amount, fee in by_channel if applied]
    summary.unapplied = [{"channel": channel, "count": int(n), "amount": int(amount), "fee": int(fee)}
                         for channel, applied, n, amount, fee in by_channel if not applied]
    summary.revenue = sum(row["amount"] for row in summary.by_channel)
    funds: dict[tuple[str, int], list[int]] = {}
    for fund, year, n, amount, fee in session.execute(
            select(FundType.code, Assessment.fiscal_year, func.count(), func.sum(Payment.amount),
                   func.sum(Payment.fee_amount))
            .join(Assessment, on_ward(Payment, "assessment_id", Assessment))
            .join(FundType, on_ward(Assessment, "fund_type_id", FundType))
            .where(of_day, Payment.applied).group_by(FundType.code, Assessment.fiscal_year)):
        _add_fund(funds, (fund, int(year)), int(n), int(amount), int(fee))
    for fund, n, amount in session.execute(
            select(FundType.code, func.count(func.distinct(Payment.id)), func.sum(SaleLine.amount))
            .join(SaleLine, (SaleLine.sale_id == Payment.sale_id)
                  & (SaleLine.municipality_id == Payment.municipality_id))
            .join(FundType, on_ward(SaleLine, "fund_type_id", FundType))
            .where(of_day, Payment.applied).group_by(FundType.code)):
        _add_fund(funds, (fund, fiscal_year_of(business_date)), int(n), int(amount), 0)
    summary.by_fund = [{"fund": fund, "fiscal_year": year, "count": n, "amount": amount, "fee": fee}
                       for (fund, year), (n, amount, fee) in sorted(funds.items())]


def _add_fund(funds: dict[tuple[str, int], list[int]], key: tuple[str, int], n: int, amount: int, fee: int) -> None:
    figures = funds.setdefault(key, [0, 0, 0])
    figures[0] += n
    figures[1] += amount
    figures[2] += fee


def _ledger_findings(session: Session, municipality_id: int, business_date: date) -> list[dict[str, Any]]:
    """Applied payments of the day whose instalment the ledger has changed since: the amounts differ.

    What a payment booked (a double payment, a void slip, lateness, an amount that differed
    when it came) was decided and raised when it was booked (`domain.booking.decide`);
    counter sales have no assessment; only the payments that are exceptions are read.
    """
    query = (select(Payment.id, Payment.amount, Slip.number, Assessment.amount.label("billed"))
             .join(Slip, on_ward(Payment, "slip_id", Slip))
             .join(Assessment, on_ward(Payment, "assessment_id", Assessment))
             .where(_of_day(municipality_id, business_date), Payment.applied, Payment.amount != Assessment.amount)
             .order_by(Payment.id))
    return [dict(kind="amount_mismatch", subject_key=f"payment:{row.id}", business_date=business_date,
                 amount=int(row.amount), slip_number=row.number, payment_id=row.id,
                 details={"billed": int(row.billed), "paid": int(row.amount),
                          "difference": int(row.amount - row.billed)})
            for row in session.execute(query)]


def _check_stored_settlement(session: Session, municipality_id: int, business_date: date, adapter: str,
                             summary: ReconSummary) -> str:
    """Payments through `adapter` whose settlement window closed today, against the imported reports."""
    checked = business_date - timedelta(days=rules()[adapter].settle_within_days)
    covered = session.scalar(select(func.max(ProviderSettlement.settled_on)).where(
        ProviderSettlement.municipality_id == municipality_id, ProviderSettlement.adapter == adapter))
    if covered is None or covered < checked:
        session.rollback()
        return f"no settlement report imported yet that covers {checked.isoformat()}"
    references = list(session.scalars(select(PaymentAttempt.reference).join(
        Payment, Payment.id == PaymentAttempt.payment_id).where(
        PaymentAttempt.adapter == adapter, PaymentAttempt.status == "succeeded", _of_day(municipality_id, checked))))
    report = stored_settlements(session, municipality_id, adapter, references, checked)
    with transaction(session):
        summary.raised += raise_exceptions(session, municipality_id, _settlement_findings(
            session, municipality_id, checked, adapter, report))
    return f"imported settlement report, payments of {checked.isoformat()} (window closed)"


def _provider_figures(session: Session, municipality_id: int, business_date: date, adapter: str,
                      report: list[SettledPayment]) -> dict[str, int]:
    """What the gateway recorded through `adapter` on the day, and what the provider settled and kept."""
    recorded = session.execute(select(func.count(), func.coalesce(func.sum(PaymentAttempt.amount), 0))
                               .join(Payment, on_ward(PaymentAttempt, "payment_id", Payment))
                               .where(PaymentAttempt.adapter == adapter, PaymentAttempt.status == "succeeded",
                                      _of_day(municipality_id, business_date))).one()
    return {"payments": int(recorded[0]), "recorded": int(recorded[1]), "settled": sum(s.amount for s in report),
            "fees": sum(s.fee for s in report), "payout": sum(s.amount - s.fee for s in report)}


def _settlement_findings(session: Session, municipality_id: int, business_date: date, adapter: str,
                         report: list[SettledPayment]) -> list[dict[str, Any]]:
    """The day's payments through `adapter` against what it says it settled; fees it keeps are netted."""
    attempts = select(PaymentAttempt.reference, PaymentAttempt.amount, Payment.id, Payment.municipality_id).join(
        Payment, on_ward(PaymentAttempt, "payment_id", Payment)).where(PaymentAttempt.adapter == adapter,
                                                                PaymentAttempt.status == "succeeded")
    ours = {ref: (amount, pid) for ref, amount, pid, _ in session.execute(
        attempts.where(_of_day(municipality_id, business_date)))}
    # A provider account may serve several wards. A reference names its ward; only those made
    # before are looked up, across wards.
    others, unnamed = other_wards_references(session, municipality_id, [s.reference for s in report if s.reference])
    if unnamed:
        others |= {ref for ref, *_ in session.execute(attempts.where(Payment.municipality_id != municipality_id,
                                                                     PaymentAttempt.reference.in_(unnamed)))}
    settled = [s for s in report if s.reference not in others]
    found = match([Booked(pid, adapter, ref, int(amount), business_date) for ref, (amount, pid) in ours.items()],
                  [Settled(s.reference or s.provider_payment_id, s.amount, business_date, s.provider_payment_id)
                   for s in settled])
    out: list[dict[str, Any]] = [
        dict(kind="missing_in_settlement", subject_key=f"payment:{b.payment_id}", business_date=business_date,
             amount=b.amount, payment_id=b.payment_id, details={"adapter": adapter, "reference": b.key})
        for b in found.missing_in_settlement]
    out += [dict(kind="missing_in_gateway", subject_key=f"settlement:{s.ref}", business_date=business_date,
                 amount=s.amount, details={"adapter": adapter, "reference": s.key, "provider_payment_id": s.ref})
            for s in found.missing_in_gateway]
    out += [dict(kind="amount_mismatch", subject_key=f"settlement:payment:{b.payment_id}",
                 business_date=business_date, amount=b.amount, payment_id=b.payment_id,
                 details={"adapter": adapter, "recorded": b.amount, "settled": s.amount})
            for b, s in found.amount_mismatch]
    fees = sum(s.fee for s in settled if s.reference in ours)
    if fees:
        out.append(dict(kind="fee_netted", subject_key=f"fees:{adapter}:{business_date.isoformat()}",
                        business_date=business_date, amount=fees,
                        details={"adapter": adapter, "fees": fees, "payments": len(found.matched),
                                 "reason": "the provider keeps its fee out of the payout; public funds are "
                                           "budgeted gross: its invoice is due instead"}))
    return out


def _record_run(session: Session, municipality_id: int, summary: ReconSummary) -> int:
    """Insert or update the run record of the date; return how many times it has run."""
    runs = table(ReconRun)
    now = utcnow()
    values = dict(municipality_id=municipality_id, business_date=summary.business_date, status="succeeded",
                  runs=1, started_at=now, finished_at=now, summary=summary.as_dict())
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(runs).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[runs.c.municipality_id, runs.c.business_date],
        set_={"runs": runs.c.runs + 1, "finished_at": now, "status": "succeeded", "summary": summary.as_dict()})
    with transaction(session):
        count = session.execute(statement.returning(runs.c.runs)).scalar_one()
        record_event(session, "recon.run", "recon_run", summary.business_date.isoformat(),
                     municipality_id=municipality_id, actor="reconciliation",
                     data={"raised": dict(summary.raised), "payments": summary.payments, "run": count})
    return int(count)


def summary_csv(summary: ReconSummary) -> bytes:
    """The run's figures as CSV (UTF-8 with BOM for spreadsheets); the same inputs give the same bytes."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "key", "fiscal_year", "count", "amount", "fee"])
    writer.writerow(["total", "all", "", summary.payments, summary.revenue, summary.fees])
    for row in summary.by_channel:
        writer.writerow(["channel", row["channel"], "", row["count"], row["amount"], row["fee"]])
    for row in summary.unapplied:
        writer.writerow(["unapplied", row["channel"], "", row["count"], row["amount"], row["fee"]])
    for row in summary.by_fund:
        writer.writerow(["fund", row["fund"], row["fiscal_year"], row["count"], row["amount"], row["fee"]])
    for kind, count in sorted(summary.open_exceptions.items()):
        writer.writerow(["exception", kind, "", count, "", ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def run_record(session: Session, municipality_code: str, business_date: date) -> tuple[ReconRun | None,
                                                                                       list[ReconException]]:
    """The run of a date and its exceptions (for the API and the staff screens)."""
    municipality = get_municipality(session, municipality_code)
    run = session.scalar(select(ReconRun).where(ReconRun.municipality_id == municipality.id,
                                                ReconRun.business_date == business_date))
    exceptions = list(session.scalars(select(ReconException).where(
        and_(ReconException.municipality_id == municipality.id, ReconException.business_date == business_date))
        .order_by(ReconException.kind, ReconException.subject_key)))
    return run, exceptions


def summary_json(summary: ReconSummary) -> bytes:
    return json.dumps(summary.as_dict(), ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
