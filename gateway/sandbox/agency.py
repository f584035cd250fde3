"""Sandbox mode of the agency channel: residents pay issued slips at stores and in apps.

Plans store payments for a share of the issued slips, plants anomalies of every kind the
agency channel can show (each one exactly once, so a test can count them), has the agency
simulator write its files day by day, imports them, records the deposits the agency makes
(short for planted remittance anomalies) and runs the checks. `kokin demo` and the tests
use it; nothing here is used with real agencies.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.agency import AgencyAdapter
from adapters.agency.simulator import StorePayment, files_by_day, schedule
from domain.barcode import compose, decode, issuer_prefix
from domain.calendar import business_date
from domain.identifiers import make_slip_number
from gateway.db import utcnow
from gateway.models import Slip
from gateway.progress import NoProgress, Progress
from gateway.services.agency_checks import check_agency_data, expected_remittances, record_deposit
from gateway.services.agency_import import import_agency_file
from gateway.services.reference import get_municipality
from gateway.services.slips import reissue_slip

# Where residents pay, roughly as the apps and chains share it (codes: the default chain table).
CHAINS = (("820", 30), ("780", 8), ("800", 8), ("830", 6), ("010", 20), ("020", 12), ("030", 12), ("080", 4))
ANOMALY_KINDS = (
    "unknown_slip", "double_payment", "amount_mismatch", "paid_after_due_date", "paid_after_store_deadline",
    "preliminary_cancelled", "final_without_preliminary", "final_overdue", "payment_on_void_slip",
    "remittance_mismatch", "fee_netted",
)
SANDBOX_FEE = 60  # yen per payment the sandbox agency nets out of a deposit when fee_netted is planted


@dataclass
class AgencyPlan:
    payments: list[StorePayment]
    planted: Counter[str] = field(default_factory=Counter)  # exceptions the plan must raise, by kind
    short_remittances: int = 0  # deposits to record short (remittance_mismatch)
    netted_remittances: int = 0  # deposits to record net of the agency's fees (fee_netted)


@dataclass(frozen=True)
class SandboxOutcome:
    files: int
    records: int
    booked: int
    deposits: int
    exceptions: Counter[str]
    last_file_on: date | None


def plan_store_payments(session: Session, municipality_code: str, *, share: float,
                        anomalies: Mapping[str, int] | None = None, seed: int = 7,
                        until: date | None = None) -> AgencyPlan:
    """Pay `share` of the issued slips (due by `until`) at stores and in apps, and plant `anomalies`.

    Planting payment_on_void_slip reissues slips (their earlier issue becomes void).
    """
    rng = random.Random(seed)
    municipality = get_municipality(session, municipality_code)
    query = (select(Slip).where(Slip.municipality_id == municipality.id, Slip.status == "issued",
                                Slip.barcode.is_not(None)).order_by(Slip.id))
    if until is not None:
        query = query.where(Slip.due_date <= until)
    slips = list(session.scalars(query))
    rng.shuffle(slips)
    wanted = Counter(anomalies or {})
    spare = slips[: sum(wanted.values())]  # fresh slips for the anomalies
    paid = slips[len(spare): len(spare) + int((len(slips) - len(spare)) * share)]
    plan = AgencyPlan([_store_payment(rng, s.barcode, _before(rng, s.due_date)) for s in paid])
    clean = list(plan.payments)  # a double payment repeats one of these, never a planted anomaly
    planters: dict[str, Callable[[], StorePayment | None]] = {
        "unknown_slip": lambda: _unknown(rng, municipality.company_code, municipality.client_code, paid or spare),
        "double_payment": lambda: _again(rng, clean),
        "amount_mismatch": lambda: _mismatch(rng, spare.pop()),
        "paid_after_due_date": lambda: _late(rng, spare.pop(), past_deadline=False),
        "paid_after_store_deadline": lambda: _late(rng, spare.pop(), past_deadline=True),
        "preliminary_cancelled": lambda: _with_records(rng, spare.pop(), ("preliminary", "cancel")),
        "final_without_preliminary": lambda: _with_records(rng, spare.pop(), ("final",)),
        "final_overdue": lambda: _with_records(rng, spare.pop(), ("preliminary",)),
        "payment_on_void_slip": lambda: _on_void(session, rng, municipality.id, spare.pop()),
    }
    for kind, count in sorted(wanted.items()):
        if kind == "remittance_mismatch":
            plan.short_remittances = count
        elif kind == "fee_netted":
            plan.netted_remittances = count
        else:
            plan.payments += [p for p in (planters[kind]() for _ in range(count)) if p is not None]
        plan.planted[kind] += count
    return plan


def _store_payment(rng: random.Random, barcode: str | None, paid_on: date) -> StorePayment:
    assert barcode is not None
    chain = rng.choices([c for c, _ in CHAINS], [w for _, w in CHAINS])[0]
    at = datetime.combine(paid_on, time(rng.randint(7, 22), rng.randint(0, 59)))
    return StorePayment(barcode, at, f"{rng.randint(1, 9_999_999):07d}", chain)


def _before(rng: random.Random, due: date) -> date:
    return due - timedelta(days=rng.randint(1, 25))


def _unknown(rng: random.Random, company: str, client: str, slips: list[Slip]) -> StorePayment:
    """A barcode with our prefix and a well-formed slip number this gateway never issued."""
    number = make_slip_number(2026, 9_000_000_000_000 + rng.randint(0, 999_999_999))
    return _store_payment(rng, compose(issuer_prefix(company, client), number, 0, None, 5_000), date(2026, 6, 10))


def _again(rng: random.Random, payments: list[StorePayment]) -> StorePayment:
    first = rng.choice(payments)
    again = _store_payment(rng, first.barcode, first.paid_at.date())  # same day, another store or app
    return replace(again, store_code="0000001", paid_at=first.paid_at + timedelta(minutes=7))


def _mismatch(rng: random.Random, slip: Slip) -> StorePayment:
    """The slip's barcode with 100 yen more, check digit recomputed: a hand-corrected slip."""
    assert slip.barcode is not None
    bar = decode(slip.barcode)
    altered = compose(slip.barcode[:13], bar.slip_number, bar.reissue, bar.store_deadline, bar.amount + 100)
    return _store_payment(rng, altered, _before(rng, slip.due_date))


def _late(rng: random.Random, slip: Slip, *, past_deadline: bool) -> StorePayment:
    assert slip.store_deadline is not None
    paid_on = slip.store_deadline + timedelta(days=2) if past_deadline else slip.due_date + timedelta(days=1)
    return _store_payment(rng, slip.barcode, paid_on)


def _with_records(rng: random.Random, slip: Slip, records: tuple[Any, ...]) -> StorePayment:
    return replace(_store_payment(rng, slip.barcode, _before(rng, slip.due_date)), records=records)


def _on_void(session: Session, rng: random.Random, municipality_id: int, slip: Slip) -> StorePayment:
    """The resident pays with the old sheet after the slip was reissued."""
    old_barcode = slip.barcode
    reissue_slip(session, municipality_id, slip.number, reason="sandbox: slip lost and reissued", actor="sandbox")
    return _store_payment(rng, old_barcode, _before(rng, slip.due_date))


def run_agency_sandbox(session: Session, agency: AgencyAdapter, municipality_code: str, plan: AgencyPlan, *,
                       as_of: date | None = None, save_to: Path | None = None,
                       progress: Progress | None = None) -> SandboxOutcome:
    """Import the agency's files for `plan` day by day, record its deposits, run the checks on `as_of`.

    `save_to`: a folder that keeps each file as the agency sent it.
    """
    municipality = get_municipality(session, municipality_code)
    files = files_by_day(agency, schedule(plan.payments), client_code=municipality.client_code)
    if as_of is not None:
        files = {day: data for day, data in files.items() if day <= as_of}
    exceptions: Counter[str] = Counter()
    booked = records = 0
    progress = progress or NoProgress()
    progress.start(f"{agency.name} files", len(files))
    suffix = "csv" if agency.layout.format == "csv" else "dat"
    for day, data in files.items():
        name = f"{agency.name}-{day:%Y%m%d}.{suffix}"
        if save_to is not None:
            (save_to / name).write_bytes(data)
        result = import_agency_file(session, agency, data, municipality_code=municipality_code, filename=name,
                                    source="sandbox", actor="sandbox")
        exceptions += result.exceptions
        booked, records = booked + result.booked, records + result.records
        progress.advance(1)
    progress.finish()
    last = max(files) if files else None
    check_on = as_of or ((last + timedelta(days=30)) if last else business_date(utcnow()))
    deposits = _deposit(session, municipality_code, agency.name, plan, check_on)
    exceptions += check_agency_data(session, municipality_code, check_on, fees={agency.name: SANDBOX_FEE},
                                    adapter=agency.name)
    return SandboxOutcome(len(files), records, booked, deposits, exceptions, last)


def _deposit(session: Session, municipality_code: str, adapter: str, plan: AgencyPlan, until: date) -> int:
    """The agency pays each planned remittance due by `until`: the first ones 1,000 yen short, the
    next ones net of its fees, as the plan says; the rest in full."""
    count = 0
    for remittance in expected_remittances(session, municipality_code, adapter=adapter, until=until):
        if remittance.expected == 0:
            continue
        amount = remittance.expected
        if count < plan.short_remittances:
            amount -= 1_000 if 1_000 != SANDBOX_FEE * remittance.payments else 1_001
        elif count < plan.short_remittances + plan.netted_remittances:
            amount -= SANDBOX_FEE * remittance.payments
        record_deposit(session, municipality_code, adapter=adapter, deposited_on=remittance.remittance_on,
                       amount=amount, account=remittance.account, entered_by="sandbox",
                       reference=f"{adapter}-{remittance.remittance_on:%Y%m%d}-{remittance.account or 'none'}")
        count += 1
    return count
