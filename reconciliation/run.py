"""Reconcile one business date: what the gateway recorded, what providers and agencies report, the ledger.

`reconcile_day` gathers the day's payments (every channel), checks them against the ward's
assessments and the channel's settlement data (rules.toml), raises each exception once
(recon_exceptions is unique per kind and subject) and records the run with its figures.
Run it twice on the same inputs and it changes nothing and writes the same summary.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from adapters.base import Capability, PaymentAdapter
from gateway.db import transaction, utcnow
from gateway.models import (
    AgencyReport,
    Assessment,
    FundType,
    Payment,
    ReconException,
    ReconRun,
    Slip,
    table,
)
from gateway.services.agency_checks import check_agency_data
from gateway.services.events import record_event
from gateway.services.exceptions import raise_exceptions
from gateway.services.reference import get_municipality
from gateway.services.sales import daily_close
from reconciliation.matching import rules, totals

TOKYO = ZoneInfo("Asia/Tokyo")
PAID = ("succeeded", "partially_refunded", "refunded")


@dataclass
class ReconSummary:
    municipality_code: str
    business_date: date
    payments: int = 0
    revenue: int = 0  # yen booked to instalments or counter sales
    fees: int = 0  # system usage fees charged on top: never revenue
    by_channel: list[dict[str, Any]] = field(default_factory=list)
    by_fund: list[dict[str, Any]] = field(default_factory=list)
    raised: Counter[str] = field(default_factory=Counter)  # exceptions new in this run
    open_exceptions: Counter[str] = field(default_factory=Counter)  # of this date, however old
    settlement: dict[str, str] = field(default_factory=dict)  # channel -> how it was checked
    runs: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"municipality": self.municipality_code, "business_date": self.business_date.isoformat(),
                "payments": self.payments, "revenue": self.revenue, "fees": self.fees,
                "by_channel": self.by_channel, "by_fund": self.by_fund,
                "open_exceptions": dict(sorted(self.open_exceptions.items())), "settlement": self.settlement}


def day_window(business_date: date) -> tuple[datetime, datetime]:
    """The business date in Asia/Tokyo as a UTC interval [start, end)."""
    start = datetime.combine(business_date, time(0), tzinfo=TOKYO)
    return start, start + timedelta(days=1)


def reconcile_day(session: Session, municipality_code: str, business_date: date, *,
                  adapters: Mapping[str, PaymentAdapter] | None = None,
                  agency_fees: Mapping[str, int] | None = None) -> ReconSummary:
    """Reconcile `business_date`; safe to repeat (exceptions once, the run record updated)."""
    municipality = get_municipality(session, municipality_code)
    summary = ReconSummary(municipality_code, business_date)
    rows = _payments_of_day(session, municipality.id, business_date)
    session.rollback()  # no transaction stays open while terminal providers are asked below
    summary.payments = len(rows)
    summary.revenue = sum(r["amount"] for r in rows if r["counts"])
    summary.fees = sum(r["fee"] for r in rows)
    summary.by_channel = totals([r for r in rows if r["counts"]], "channel")
    summary.by_fund = totals([r for r in rows if r["counts"] and r["fund"]], "fund", "fiscal_year")
    with transaction(session):
        summary.raised += raise_exceptions(session, municipality.id, list(_ledger_findings(rows)))
    summary.raised += check_agency_data(session, municipality_code, business_date, fees=agency_fees)
    summary.settlement["agency"] = f"速報/確報 within {rules()['agency'].settle_within_days} business days; " \
                                   "remittances against deposits"
    reports = {name: a.settlement_report(business_date) for name, a in (adapters or {}).items()
               if a.capabilities & Capability.TERMINAL and a.capabilities & Capability.SETTLEMENT_REPORT}
    if reports:
        close = daily_close(session, municipality.id, business_date, reports)
        summary.raised += close.raised
        summary.settlement["emoney"] = "terminal settlement report of the day"
    for channel in ("card", "paypay"):
        if not any(a.capabilities & Capability.SETTLEMENT_REPORT for a in (adapters or {}).values()
                   if not a.capabilities & Capability.TERMINAL):
            summary.settlement[channel] = "no settlement report from the provider's adapter yet"
    summary.open_exceptions = Counter(dict(session.execute(
        select(ReconException.kind, func.count()).where(ReconException.municipality_id == municipality.id,
                                                        ReconException.business_date == business_date,
                                                        ReconException.status != "resolved")
        .group_by(ReconException.kind)).all()))
    summary.runs = _record_run(session, municipality.id, summary)
    return summary


def _payments_of_day(session: Session, municipality_id: int, business_date: date) -> list[dict[str, Any]]:
    """Every payment accepted on the day, with what the ledger and the slip say of it."""
    start, end = day_window(business_date)
    query = (select(Payment.id, Payment.channel, Payment.amount, Payment.fee_amount, Payment.applied,
                    Payment.overpaid, Payment.accepted_at, Payment.sale_id, Slip.status.label("slip_status"),
                    Slip.due_date, Slip.number, Assessment.amount.label("billed"), Assessment.fiscal_year,
                    FundType.code.label("fund"), AgencyReport.id.label("agency_report_id"))
             .outerjoin(Slip, Slip.id == Payment.slip_id)
             .outerjoin(Assessment, Assessment.id == Payment.assessment_id)
             .outerjoin(FundType, FundType.id == Assessment.fund_type_id)
             .outerjoin(AgencyReport, AgencyReport.payment_id == Payment.id)
             .where(Payment.municipality_id == municipality_id, Payment.status.in_(PAID),
                    Payment.accepted_at >= start, Payment.accepted_at < end)
             .order_by(Payment.accepted_at, Payment.id))
    out = []
    for row in session.execute(query):
        out.append({"id": row.id, "channel": row.channel, "amount": int(row.amount), "fee": int(row.fee_amount),
                    "applied": row.applied, "overpaid": row.overpaid, "sale": row.sale_id is not None,
                    "counts": row.applied, "accepted_on": row.accepted_at.astimezone(TOKYO).date(),
                    "slip_status": row.slip_status, "due_date": row.due_date, "slip": row.number,
                    "billed": row.billed, "fiscal_year": row.fiscal_year, "fund": row.fund,
                    "agency_report_id": row.agency_report_id})
    return out


def _ledger_findings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Payments set against the ward's assessments. Agency payments were judged when their file came in."""
    found = []
    for row in rows:
        if row["sale"] or row["agency_report_id"] is not None:
            continue
        subject = f"payment:{row['id']}"
        common = dict(subject_key=subject, business_date=row["accepted_on"], amount=row["amount"],
                      slip_number=row["slip"], payment_id=row["id"])
        if row["overpaid"]:
            found.append(dict(kind="double_payment", details={"channel": row["channel"], "reason": "the "
                              "instalment was already paid; a refund is requested"}, **common))
        if row["applied"] and row["billed"] is not None and row["amount"] != row["billed"]:
            found.append(dict(kind="amount_mismatch", details={"billed": row["billed"], "paid": row["amount"],
                                                               "difference": row["amount"] - row["billed"]}, **common))
        if row["slip_status"] == "void":
            found.append(dict(kind="payment_on_void_slip", details={"channel": row["channel"]}, **common))
        if row["due_date"] is not None and row["accepted_on"] > row["due_date"]:
            found.append(dict(kind="paid_after_due_date", details={
                "due_date": row["due_date"].isoformat(), "days_late": (row["accepted_on"] - row["due_date"]).days},
                **common))
    return found


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
    for row in summary.by_fund:
        writer.writerow(["fund", row["fund"], row["fiscal_year"], row["count"], row["amount"], row["fee"]])
    for kind, count in sorted(summary.open_exceptions.items()):
        writer.writerow(["exception", kind, "", count, "", ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
