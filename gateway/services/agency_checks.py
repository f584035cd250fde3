"""What agency data owes the ward later: 確報 within the usual delay, remittances in full.

Expected deposits are computed from 確報 data (planned remittance date and amount per
agency); a deposit is what the bank statement shows, entered by staff or imported. Each
check raises an exception once however often it runs.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain.layouts import LineError, read
from domain.matching import final_due_by, remittance_finding, rules
from gateway.db import transaction
from gateway.errors import DepositFileRejected, GatewayError
from gateway.layouts import load_layout
from gateway.models import AgencyDeposit, AgencyReport, table
from gateway.services.events import record_event
from gateway.services.exceptions import raise_exceptions
from gateway.services.reference import get_municipality


@dataclass(frozen=True)
class Remittance:
    adapter: str
    remittance_on: date
    payments: int
    expected: int  # yen, from 確報 data
    received: int  # yen, deposits recorded for that agency and date

    @property
    def difference(self) -> int:
        return self.received - self.expected


def expected_remittances(session: Session, municipality_code: str, *, adapter: str | None = None,
                         until: date | None = None) -> list[Remittance]:
    """Per agency and planned remittance date: what 確報 data says is coming, and what came."""
    municipality_id = get_municipality(session, municipality_code).id
    expected = (select(AgencyReport.adapter, AgencyReport.remittance_on, func.count(), func.sum(AgencyReport.amount))
                .where(AgencyReport.municipality_id == municipality_id, AgencyReport.final_import_id.is_not(None),
                       AgencyReport.remittance_on.is_not(None))
                .group_by(AgencyReport.adapter, AgencyReport.remittance_on))
    received = (select(AgencyDeposit.adapter, AgencyDeposit.deposited_on, func.sum(AgencyDeposit.amount))
                .where(AgencyDeposit.municipality_id == municipality_id)
                .group_by(AgencyDeposit.adapter, AgencyDeposit.deposited_on))
    if adapter is not None:
        expected = expected.where(AgencyReport.adapter == adapter)
        received = received.where(AgencyDeposit.adapter == adapter)
    deposits: dict[tuple[str, date], int] = {(a, d): int(amount) for a, d, amount in session.execute(received)}
    rows: dict[tuple[str, date], tuple[int, int]] = {
        (a, d): (int(n), int(amount)) for a, d, n, amount in session.execute(expected) if d is not None}
    keys = sorted(set(rows) | set(deposits), key=lambda k: (k[1], k[0]))
    out = [Remittance(a, d, rows.get((a, d), (0, 0))[0], rows.get((a, d), (0, 0))[1], deposits.get((a, d), 0))
           for a, d in keys]
    return [r for r in out if until is None or r.remittance_on <= until]


def record_deposit(session: Session, municipality_code: str, *, adapter: str, deposited_on: date, amount: int,
                   reference: str, entered_by: str) -> bool:
    """Record a deposit from the bank statement; False when this statement line was recorded before."""
    if amount <= 0:
        raise GatewayError(f"a deposit is a positive number of yen, got {amount}", code="invalid_amount", status=422)
    if not reference.strip():
        raise GatewayError("a deposit needs the statement line's reference", code="invalid_reference", status=422)
    municipality_id = get_municipality(session, municipality_code).id
    with transaction(session):
        return _insert_deposit(session, municipality_id, adapter, deposited_on, amount, reference, entered_by)


def _insert_deposit(session: Session, municipality_id: int, adapter: str, deposited_on: date, amount: int,
                    reference: str, entered_by: str) -> bool:
    deposits = table(AgencyDeposit)
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    new = session.execute(dialect_insert(deposits).values(
        municipality_id=municipality_id, adapter=adapter, deposited_on=deposited_on, amount=amount,
        reference=reference.strip()[:64], entered_by=entered_by[:100]).on_conflict_do_nothing()
        .returning(deposits.c.id)).scalar()
    if new is not None:
        record_event(session, "agency.deposit_recorded", "agency_deposit", new, municipality_id=municipality_id,
                     data={"adapter": adapter, "deposited_on": deposited_on.isoformat(), "amount": amount},
                     actor=entered_by)
    return new is not None


def import_deposits(session: Session, municipality_code: str, data: bytes, *, agencies: Collection[str],
                    entered_by: str) -> tuple[int, int]:
    """Record the deposits of a statement file (layout kokin-deposits); (new, seen before).

    Every line is checked first (fields, a configured agency, one reference once); then all
    are recorded in one transaction. A statement line recorded before is skipped.
    """
    rows, errors = read(load_layout("kokin-deposits"), data)
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        values = row.values
        if values["adapter"] not in agencies:
            errors.append(LineError(row.line, "adapter", f"no agency adapter {values['adapter']!r} is configured"))
        key = (values["adapter"], values["reference"])
        if key in seen:
            errors.append(LineError(row.line, "reference", f"repeats line {seen[key]}"))
        seen.setdefault(key, row.line)
    if errors or not rows:
        raise DepositFileRejected(errors or [LineError(0, None, "the file has no deposits")])
    municipality_id = get_municipality(session, municipality_code).id
    with transaction(session):
        new = sum(_insert_deposit(session, municipality_id, entered_by=entered_by, **row.values) for row in rows)
    return new, len(rows) - new


def check_agency_data(session: Session, municipality_code: str, as_of: date, *,
                      fees: Mapping[str, int] | None = None, adapter: str | None = None) -> Counter[str]:
    """Raise final_overdue and remittance exceptions due by `as_of`; count the new ones.

    A deposit short by exactly the agency's fee per payment (`fees`, yen per payment, from
    AGENCY_FEES) is `fee_netted` (public funds are budgeted gross: fees are invoiced, never
    netted); any other difference is `remittance_mismatch`.
    """
    municipality_id = get_municipality(session, municipality_code).id
    with transaction(session):
        raised = raise_exceptions(session, municipality_id, _overdue_finals(session, municipality_id, as_of))
        raised += raise_exceptions(session, municipality_id, [
            dict(kind=kind, subject_key=f"remittance:{r.adapter}:{r.remittance_on.isoformat()}",
                 business_date=r.remittance_on, amount=r.difference,
                 details={"adapter": r.adapter, "expected": r.expected, "received": r.received,
                          "payments": r.payments, "difference": r.difference})
            for r in expected_remittances(session, municipality_code, adapter=adapter, until=as_of)
            if (kind := remittance_finding(r.expected, r.received, r.payments, (fees or {}).get(r.adapter)))])
    return raised


def _overdue_finals(session: Session, municipality_id: int, as_of: date) -> list[dict[str, object]]:
    """速報 with no 確報 (and no 取消) by final_due_by(), the agency rule's business days after payment."""
    # Business days are counted on the calendar: paid on P, overdue once as_of is past P + N business days.
    earliest_overdue = as_of - timedelta(days=rules()["agency"].settle_within_days)  # a cheap bound for the query
    rows = session.execute(select(AgencyReport.id, AgencyReport.paid_on, AgencyReport.amount,
                                  AgencyReport.slip_number, AgencyReport.payment_id, AgencyReport.adapter)
                           .where(AgencyReport.municipality_id == municipality_id,
                                  AgencyReport.preliminary_import_id.is_not(None),
                                  AgencyReport.final_import_id.is_(None), AgencyReport.cancel_import_id.is_(None),
                                  AgencyReport.paid_on <= earliest_overdue)).all()
    return [dict(kind="final_overdue", subject_key=f"agency_report:{row.id}", business_date=row.paid_on,
                 amount=row.amount, slip_number=row.slip_number, payment_id=row.payment_id, agency_report_id=row.id,
                 details={"adapter": row.adapter, "paid_on": row.paid_on.isoformat(),
                          "final_due_by": final_due_by(row.paid_on).isoformat()})
            for row in rows if final_due_by(row.paid_on) < as_of]
