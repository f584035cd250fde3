"""Seed and read reference data: municipalities and fund types."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.bank_statements import BankAccount
from domain.fiscal import DEFAULT_CLOSING_CUTOFF, parse_cutoff
from domain.identifiers import is_valid_municipality_code
from gateway.db import transaction
from gateway.errors import NotFound
from gateway.models import CHANNELS, FundType, Municipality
from gateway.models.reference import OVERPAYMENT_POLICIES
from gateway.services.counters import seed_counters
from gateway.services.events import record_event
from gateway.services.fee_items import seed_fee_items


class ReferenceDataError(RuntimeError):
    """The configured municipalities or funds are malformed."""


def seed_reference_data(session: Session, municipalities: list[dict[str, Any]]) -> list[str]:
    """Insert configured municipalities and funds that are missing; return what was added.

    Existing rows are left alone: after the first seed, staff own them. The one exception is
    a fund's bank account where the fund has none yet (funds seeded before accounts existed).
    """
    added: list[str] = []
    with transaction(session):
        for config in municipalities:
            _check_municipality(config)
            muni = session.scalar(select(Municipality).where(Municipality.code == config["code"]))
            if muni is None:
                fields = {k: v for k, v in config.items() if k not in ("funds", "counters", "fee_items")}
                muni = Municipality(**fields)
                session.add(muni)
                session.flush()
                record_event(session, "municipality.created", "municipality", muni.code,
                             municipality_id=muni.id, data={"name": muni.name})
                added.append(f"municipality {muni.code} {muni.name}")
            known = {f.code: f for f in session.scalars(select(FundType).where(FundType.municipality_id == muni.id))}
            for fund in config.get("funds", []):
                existing = known.get(fund["code"])
                if existing is not None and existing.bank_account is None and fund.get("bank_account"):
                    existing.bank_account = str(BankAccount.parse(fund["bank_account"]))
                    record_event(session, "fund_type.bank_account_set", "fund_type", fund["code"],
                                 municipality_id=muni.id, data={"bank_account": existing.bank_account})
                    added.append(f"bank account of fund {muni.code}/{fund['code']}")
                if existing is None:
                    session.add(FundType(municipality_id=muni.id, **fund))
                    record_event(session, "fund_type.created", "fund_type", fund["code"],
                                 municipality_id=muni.id, data={"channels": fund["channels"]})
                    added.append(f"fund {muni.code}/{fund['code']} {fund['name']}")
            session.flush()
            added += seed_counters(session, muni, config)
            added += seed_fee_items(session, muni, config)
    return added


def _check_municipality(config: dict[str, Any]) -> None:
    code = str(config.get("code", ""))
    if not is_valid_municipality_code(code):
        raise ReferenceDataError(f"municipality code {code!r} is not 6 digits with a valid check digit")
    try:
        parse_cutoff(str(config.get("closing_cutoff", DEFAULT_CLOSING_CUTOFF)))
    except ValueError as exc:
        raise ReferenceDataError(f"municipality {code}: {exc}") from None
    for fund in config.get("funds", []):
        policy = fund.get("overpayment_policy", "core_system")
        if policy not in OVERPAYMENT_POLICIES:
            raise ReferenceDataError(f"fund {code}/{fund.get('code')}: overpayment_policy {policy!r} is not one of "
                                     f"{', '.join(OVERPAYMENT_POLICIES)}")
        unknown = set(fund.get("channels", [])) - set(CHANNELS)
        if unknown:
            raise ReferenceDataError(f"fund {code}/{fund.get('code')}: unknown channels {sorted(unknown)}; "
                                     f"known: {', '.join(CHANNELS)}")
        if fund.get("bank_account") is not None:
            try:
                BankAccount.parse(str(fund["bank_account"]))
            except ValueError as exc:
                raise ReferenceDataError(f"fund {code}/{fund.get('code')}: {exc}") from None


def get_municipality(session: Session, code: str) -> Municipality:
    """Return the municipality with this code or raise NotFound."""
    muni = session.scalar(select(Municipality).where(Municipality.code == code))
    if muni is None:
        raise NotFound(f"municipality {code} is not configured")
    return muni


def list_funds(session: Session, municipality_id: int) -> list[FundType]:
    """Return the municipality's fund types ordered by code."""
    return list(session.scalars(
        select(FundType).where(FundType.municipality_id == municipality_id).order_by(FundType.code)
    ))


def ward_ids(session: Session) -> list[int]:
    """Every municipality's id, in order: work that spans the service runs ward by ward (docs/scaling.md)."""
    return list(session.scalars(select(Municipality.id).order_by(Municipality.id)))
