"""Sandbox mode of eLTAX payment data: residents pay instalments with their eL番号.

Gives a share of the instalments with issued slips an eL番号 where the core system gave
none (a stand-in for the ward's core system, which prints it on the slip), pays them through
eLTAX before their due date, plants one payment of each anomaly the channel can show (an
unknown eL番号, a second payment, another amount), has the simulator write the files day by
day, imports them, records 地方税共同機構's remittances in full and runs the checks. `kokin demo`
uses it; nothing here is used with real eLTAX data.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.eltax import METHODS, EltaxAdapter
from adapters.eltax.simulator import EltaxPaid, files_by_day
from domain.calendar import business_date
from gateway.db import transaction, utcnow
from gateway.models import Assessment, Slip
from gateway.models.base import on_ward
from gateway.services.agency_checks import check_agency_data, expected_remittances, record_deposit
from gateway.services.agency_import import import_agency_file
from gateway.services.reference import get_municipality

ANOMALY_KINDS = ("unknown_slip", "double_payment", "amount_mismatch")


@dataclass(frozen=True)
class EltaxOutcome:
    files: int
    payments: int
    booked: int
    deposits: int
    exceptions: Counter[str]


def sandbox_el_number(municipality_code: str, assessment_id: int) -> str:
    """An eL番号 for the sandbox: digits only, unique in the municipality (the real one is the core system's)."""
    return f"{municipality_code}{assessment_id:020d}"


def plan_eltax_payments(session: Session, municipality_code: str, *, count: int, until: date,
                        seed: int = 14) -> list[EltaxPaid]:
    """Pay `count` instalments with issued slips due by `until` through eLTAX, plus one of each anomaly."""
    rng = random.Random(seed)
    municipality_id = get_municipality(session, municipality_code).id
    rows = session.execute(select(Assessment.id, Assessment.amount, Assessment.el_number, Slip.due_date)
                           .join(Slip, on_ward(Slip, "assessment_id", Assessment))
                           .where(Assessment.municipality_id == municipality_id, Slip.status == "issued",
                                  Assessment.closed_reason.is_(None), Slip.due_date <= until)
                           .order_by(Assessment.id)).all()
    instalments = list({row.id: row for row in rows}.values())  # one slip issued each, but a reissue may linger
    chosen = rng.sample(instalments, min(count + 1, len(instalments)))
    if not chosen:
        return []
    with transaction(session):
        for row in chosen:
            if row.el_number is None:
                session.execute(update(Assessment).where(Assessment.municipality_id == municipality_id,
                                                         Assessment.id == row.id)
                                .values(el_number=sandbox_el_number(municipality_code, row.id)))
    paid = [EltaxPaid(row.el_number or sandbox_el_number(municipality_code, row.id), row.amount,
                      datetime.combine(row.due_date - timedelta(days=rng.randint(1, 20)),
                                       time(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))),
                      rng.choice(METHODS)) for row in chosen]
    clean, mismatch = paid[:-1], paid[-1]
    anomalies = [replace(clean[0], paid_at=clean[0].paid_at + timedelta(hours=1), method="app"),  # double
                 replace(mismatch, amount=mismatch.amount + 100),  # amount_mismatch
                 EltaxPaid(f"{municipality_code}{'9' * 20}", 5_000, clean[0].paid_at, "netbank")]  # unknown_slip
    return clean + anomalies


def run_eltax_sandbox(session: Session, adapter: EltaxAdapter, municipality_code: str, payments: list[EltaxPaid],
                      *, save_to: Path | None = None) -> EltaxOutcome:
    """Import the eLTAX files for `payments` day by day, record the remittances in full, run the checks."""
    files = files_by_day(adapter, payments)
    exceptions: Counter[str] = Counter()
    booked = 0
    for day, data in files.items():
        name = f"{adapter.name}-{day:%Y%m%d}.csv"
        if save_to is not None:
            (save_to / name).write_bytes(data)
        result = import_agency_file(session, adapter, data, municipality_code=municipality_code, filename=name,
                                    source="sandbox", actor="sandbox")
        exceptions += result.exceptions
        booked += result.booked
    check_on = (max(files) + timedelta(days=30)) if files else business_date(utcnow())
    deposits = 0
    for remittance in expected_remittances(session, municipality_code, adapter=adapter.name, until=check_on):
        if remittance.expected:
            deposits += record_deposit(session, municipality_code, adapter=adapter.name,
                                       deposited_on=remittance.remittance_on, amount=remittance.expected,
                                       account=remittance.account, entered_by="sandbox",
                                       reference=f"{adapter.name}-{remittance.remittance_on:%Y%m%d}-"
                                                 f"{remittance.account or 'none'}")
    exceptions += check_agency_data(session, municipality_code, check_on, adapter=adapter.name)
    return EltaxOutcome(len(files), len(payments), booked, deposits, exceptions)
