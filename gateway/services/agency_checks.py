"""What agency data owes the ward later: 確報 within the usual delay, remittances in full.

Expected deposits are computed from 確報 data per agency, bank account and planned
remittance date: a payment's account is its fund's (fund_types.bank_account). A deposit is
what the bank statement shows: entered by staff, imported from a deposits file, or read from
the bank's own statement file (全銀協 入出金取引明細), which gives the account and the remitter
whose name identifies the agency. Each check raises an exception once however often it runs.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from domain.bank_statements import BankAccount, kana_key, read_statement
from domain.layouts import Layout, LineError, read
from domain.matching import final_due_by, remittance_finding, rules
from gateway.db import transaction
from gateway.errors import DepositFileRejected, GatewayError
from gateway.layouts import load_layout
from gateway.models import AgencyDeposit, AgencyReport, Assessment, FundType, Payment, table
from gateway.models.base import on_ward
from gateway.observability.metrics import observed_import
from gateway.services.events import record_event
from gateway.services.exceptions import raise_exceptions
from gateway.services.reference import get_municipality


@dataclass(frozen=True)
class Remittance:
    adapter: str
    remittance_on: date
    payments: int
    expected: int  # yen, from 確報 data
    received: int  # yen, deposits recorded for that agency, account and date
    # The bank account (BBBB-SSS-T-NNNNNNN); None: payments whose fund has no account (an unknown
    # slip), or deposits entered without one when the agency's day spans several accounts.
    account: str | None = None

    @property
    def difference(self) -> int:
        return self.received - self.expected


_Day = tuple[str, date]  # agency, planned remittance date


def expected_remittances(session: Session, municipality_code: str, *, adapter: str | None = None,
                         until: date | None = None) -> list[Remittance]:
    """Per agency, bank account and planned remittance date: what 確報 data says is coming, and what came.

    A deposit entered without an account counts for the account the agency's payments of that
    day are paid into, when there is one such account.
    """
    municipality_id = get_municipality(session, municipality_code).id
    expected = (select(AgencyReport.adapter, AgencyReport.remittance_on, FundType.bank_account, func.count(),
                       func.sum(AgencyReport.amount))
                .select_from(AgencyReport)
                .outerjoin(Payment, on_ward(AgencyReport, "payment_id", Payment))
                .outerjoin(Assessment, on_ward(Payment, "assessment_id", Assessment))
                .outerjoin(FundType, on_ward(Assessment, "fund_type_id", FundType))
                .where(AgencyReport.municipality_id == municipality_id, AgencyReport.final_import_id.is_not(None),
                       AgencyReport.remittance_on.is_not(None))
                .group_by(AgencyReport.adapter, AgencyReport.remittance_on, FundType.bank_account))
    received = (select(AgencyDeposit.adapter, AgencyDeposit.deposited_on, AgencyDeposit.account,
                       func.sum(AgencyDeposit.amount))
                .where(AgencyDeposit.municipality_id == municipality_id, AgencyDeposit.adapter.is_not(None))
                .group_by(AgencyDeposit.adapter, AgencyDeposit.deposited_on, AgencyDeposit.account))
    if adapter is not None:
        expected = expected.where(AgencyReport.adapter == adapter)
        received = received.where(AgencyDeposit.adapter == adapter)
    rows: dict[_Day, dict[str | None, tuple[int, int]]] = defaultdict(dict)
    for a, d, fund_account, n, amount in session.execute(expected):
        if d is not None:
            rows[(a, d)][fund_account] = (int(n), int(amount))
    deposits: dict[_Day, dict[str | None, int]] = defaultdict(dict)
    for agency, d, deposit_account, amount in session.execute(received):
        day: _Day = (agency or "", d)  # deposits of no agency are not selected
        accounts = list(rows.get(day, {}))
        account: str | None = deposit_account
        if account is None and len(accounts) == 1:  # entered without an account: the day's one account
            account = accounts[0]
        deposits[day][account] = deposits[day].get(account, 0) + int(amount)
    out = []
    for a, d in sorted(set(rows) | set(deposits), key=lambda k: (k[1], k[0])):
        if until is not None and d > until:
            continue
        planned, got = rows.get((a, d), {}), deposits.get((a, d), {})
        for account in sorted(set(planned) | set(got), key=lambda acc: (acc is None, acc or "")):
            n, amount = planned.get(account, (0, 0))
            out.append(Remittance(a, d, n, amount, got.get(account, 0), account))
    return out


def record_deposit(session: Session, municipality_code: str, *, adapter: str, deposited_on: date, amount: int,
                   reference: str, entered_by: str, account: str | None = None) -> bool:
    """Record a deposit from the bank statement; False when this statement line was recorded before.

    `account`: the bank account it arrived on (BBBB-SSS-T-NNNNNNN), when known.
    """
    if amount <= 0:
        raise GatewayError(f"a deposit is a positive number of yen, got {amount}", code="invalid_amount", status=422)
    if not reference.strip():
        raise GatewayError("a deposit needs the statement line's reference", code="invalid_reference", status=422)
    if account is not None:
        try:
            account = str(BankAccount.parse(account))
        except ValueError as exc:
            raise GatewayError(str(exc), code="invalid_bank_account", status=422) from None
    municipality_id = get_municipality(session, municipality_code).id
    with transaction(session):
        return _insert_deposit(session, municipality_id, adapter, deposited_on, amount, reference, entered_by,
                               account)


def _insert_deposit(session: Session, municipality_id: int, adapter: str | None, deposited_on: date, amount: int,
                    reference: str, entered_by: str, account: str | None = None) -> bool:
    deposits = table(AgencyDeposit)
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    new = session.execute(dialect_insert(deposits).values(
        municipality_id=municipality_id, adapter=adapter, account=account, deposited_on=deposited_on, amount=amount,
        reference=reference.strip()[:64], entered_by=entered_by[:100]).on_conflict_do_nothing()
        .returning(deposits.c.id)).scalar()
    if new is not None:
        record_event(session, "agency.deposit_recorded", "agency_deposit", new, municipality_id=municipality_id,
                     data={"adapter": adapter, "account": account, "deposited_on": deposited_on.isoformat(),
                           "amount": amount}, actor=entered_by)
    return new is not None


@observed_import("deposits")
def import_deposits(session: Session, municipality_code: str, data: bytes, *, agencies: Collection[str],
                    entered_by: str, layout: Layout | None = None) -> tuple[int, int]:
    """Record the deposits of a statement file (layout kokin-deposits, or one with its fields); (new, seen before).

    Every line is checked first (fields, a configured agency, one reference once); then all
    are recorded in one transaction. A statement line recorded before is skipped.
    """
    rows, errors = read(layout or load_layout("kokin-deposits"), data)
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


@dataclass(frozen=True)
class StatementImport:
    accounts: int
    deposits: int  # deposit (入金) records in the file
    recorded: int  # of them not recorded before
    withdrawals: int  # 出金 records: checked against the trailers, not recorded
    unidentified: int  # deposits whose remitter is no configured agency: recorded without one, and raised

    @property
    def known(self) -> int:
        return self.deposits - self.recorded


@observed_import("bank_statement")
def import_bank_statement(session: Session, municipality_code: str, data: bytes, *, layout: Layout,
                          remitters: Mapping[str, str], entered_by: str) -> StatementImport:
    """Record the deposits of a bank statement file (全銀協 入出金取引明細 or a layout like it).

    The whole file is checked first (every field, record kinds in order, each account's
    trailer against its records); then every deposit is recorded in one transaction with its
    account, the agency its remitter name stands for (`remitters`: half-width kana name ->
    agency adapter) and a reference made of its fields, so the same statement imported again
    records nothing. A deposit from no configured agency is recorded without one and raised
    (remittance_mismatch, reason unknown_remitter); the remitter's name is not kept.
    """
    statement, errors = read_statement(layout, data)
    if errors:
        raise DepositFileRejected(errors)
    agencies = {kana_key(name): adapter for name, adapter in remitters.items()}
    municipality_id = get_municipality(session, municipality_code).id
    unknown: list[dict[str, Any]] = []
    recorded = 0
    with transaction(session):
        for deposit in statement.deposits:
            adapter = agencies.get(kana_key(deposit.remitter_name))
            account = str(deposit.account)
            recorded += _insert_deposit(session, municipality_id, adapter, deposit.booked_on, deposit.amount,
                                        deposit.reference, entered_by, account)
            if adapter is None:
                unknown.append(dict(
                    kind="remittance_mismatch", subject_key=f"deposit:{account}:{deposit.reference}",
                    business_date=deposit.booked_on, amount=deposit.amount,
                    details={"reason": "unknown_remitter", "account": account, "expected": 0,
                             "received": deposit.amount, "inquiry_number": deposit.inquiry_number}))
        raise_exceptions(session, municipality_id, unknown)
    return StatementImport(len(statement.accounts), len(statement.deposits), recorded, len(statement.withdrawals),
                           len(unknown))


def check_agency_data(session: Session, municipality_code: str, as_of: date, *,
                      fees: Mapping[str, int] | None = None, adapter: str | None = None) -> Counter[str]:
    """Raise final_overdue and remittance exceptions due by `as_of`; count the new ones.

    Remittances are compared per agency, bank account and date. A deposit short by exactly the
    agency's fee per payment (`fees`, yen per payment, from AGENCY_FEES) is `fee_netted`
    (public funds are budgeted gross: fees are invoiced, never netted); any other difference
    is `remittance_mismatch`, and money on an account where none was expected names the
    accounts it was expected on (reason wrong_account).
    """
    municipality_id = get_municipality(session, municipality_code).id
    with transaction(session):
        raised = raise_exceptions(session, municipality_id, _overdue_finals(session, municipality_id, as_of))
        remittances = expected_remittances(session, municipality_code, adapter=adapter, until=as_of)
        raised += raise_exceptions(session, municipality_id, _remittance_exceptions(remittances, fees or {}))
    return raised


def _remittance_exceptions(remittances: list[Remittance], fees: Mapping[str, int]) -> list[dict[str, Any]]:
    days: dict[_Day, list[Remittance]] = defaultdict(list)
    for r in remittances:
        days[(r.adapter, r.remittance_on)].append(r)
    out = []
    for r in remittances:
        kind = remittance_finding(r.expected, r.received, r.payments, fees.get(r.adapter))
        if kind is None:
            continue
        details: dict[str, Any] = {"adapter": r.adapter, "account": r.account, "expected": r.expected,
                                   "received": r.received, "payments": r.payments, "difference": r.difference}
        day = days[(r.adapter, r.remittance_on)]
        elsewhere = [o.account for o in day if o.received > o.expected and o is not r]
        if r.expected == 0:
            details["reason"] = "wrong_account" if r.account else "deposit_without_account"
            details["expected_accounts"] = [o.account for o in day if o.expected]
        elif r.received < r.expected and elsewhere:
            details["reason"] = "arrived_on_other_account"
            details["received_on_accounts"] = elsewhere
        where = f"{r.account}:" if r.account else ""  # without one: the key of a whole day, as before accounts
        out.append(dict(kind=kind, subject_key=f"remittance:{r.adapter}:{where}{r.remittance_on.isoformat()}",
                        business_date=r.remittance_on, amount=r.difference, details=details))
    return out


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
