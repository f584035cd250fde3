"""The certificate counter: the fee catalogue (with history), staff accounts, counters and terminals.

Sales are in gateway.services.sales; this module holds what they are sold from.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.db import transaction
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.models import ROLES, Counter, FeeItem, FeePrice, FundType, Municipality, StaffUser, Terminal
from gateway.services.events import record_event

MIN_PASSWORD_LENGTH = 10


def seed_counters(session: Session, municipality: Municipality, config: dict[str, Any]) -> list[str]:
    """Insert configured counters, terminals and fee items that are missing (in the caller's transaction)."""
    added: list[str] = []
    counters = {c.code: c for c in session.scalars(select(Counter).where(Counter.municipality_id == municipality.id))}
    for spec in config.get("counters", []):
        counter = counters.get(spec["code"])
        if counter is None:
            counter = counters[spec["code"]] = Counter(municipality_id=municipality.id, code=spec["code"],
                                                       name=spec["name"])
            session.add(counter)
            session.flush()
            added.append(f"counter {spec['code']}")
        known = set(session.scalars(select(Terminal.device_id).where(Terminal.counter_id == counter.id)))
        for terminal in spec.get("terminals", []):
            if terminal["device_id"] not in known:
                session.add(Terminal(counter_id=counter.id, adapter=terminal.get("adapter", "square"),
                                     device_id=terminal["device_id"], name=terminal["name"]))
                added.append(f"terminal {terminal['device_id']}")
    funds: dict[str, int] = {code: fund_id for code, fund_id in session.execute(
        select(FundType.code, FundType.id).where(FundType.municipality_id == municipality.id))}
    items = set(session.scalars(select(FeeItem.code).where(FeeItem.municipality_id == municipality.id)))
    for spec in config.get("fee_items", []):
        if spec["code"] in items:
            continue
        item = FeeItem(municipality_id=municipality.id, code=spec["code"], name=spec["name"],
                       fund_type_id=funds[spec["fund"]], counters=list(spec["counters"]))
        session.add(item)
        session.flush()
        session.add(FeePrice(item_id=item.id, fee=spec["fee"], valid_from=date(2000, 4, 1), set_by="configuration"))
        added.append(f"fee item {spec['code']} {spec['name']}")
    return added


@dataclass(frozen=True)
class CatalogueEntry:
    item_id: int
    code: str
    name: str
    fund_type_id: int
    fee: int  # yen, on the day asked about


def catalogue(session: Session, municipality_id: int, counter_code: str, on: date) -> list[CatalogueEntry]:
    """The items a counter sells, each with its fee on `on`."""
    items = session.scalars(select(FeeItem).where(FeeItem.municipality_id == municipality_id, FeeItem.active)
                            .order_by(FeeItem.id)).all()
    entries = []
    for item in items:
        if counter_code not in item.counters:
            continue
        fee = fee_on(session, item.id, on)
        if fee is not None:
            entries.append(CatalogueEntry(item.id, item.code, item.name, item.fund_type_id, fee))
    return entries


def fee_on(session: Session, item_id: int, on: date) -> int | None:
    """The item's fee on a date: the newest price that applies from that date or earlier."""
    return session.scalar(select(FeePrice.fee).where(FeePrice.item_id == item_id, FeePrice.valid_from <= on)
                          .order_by(FeePrice.valid_from.desc()).limit(1))


def set_fee(session: Session, municipality_id: int, item_code: str, fee: int, valid_from: date, *, actor: str,
            today: date) -> FeePrice:
    """Set a new fee from `valid_from` on (today or later: sales already made keep their fee)."""
    if fee <= 0:
        raise GatewayError(f"a fee is a positive number of yen, got {fee}", code="invalid_fee", status=422)
    if valid_from < today:
        raise GatewayError(f"a new fee cannot apply from the past ({valid_from})", code="fee_in_the_past",
                           status=422)
    with transaction(session):
        item = session.scalar(select(FeeItem).where(FeeItem.municipality_id == municipality_id,
                                                    FeeItem.code == item_code))
        if item is None:
            raise NotFound(f"no fee item {item_code!r}", code="unknown_item")
        name = item.name  # a failed flush expires the item: read what the message needs first
        price = FeePrice(item_id=item.id, fee=fee, valid_from=valid_from, set_by=actor)
        session.add(price)
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(f"{name} already has a fee from {valid_from}", code="fee_exists") from exc
        record_event(session, "fee.set", "fee_item", item.code, municipality_id=municipality_id, actor=actor,
                     data={"fee": fee, "valid_from": valid_from.isoformat()})
    return price


def fee_history(session: Session, municipality_id: int) -> list[tuple[FeeItem, list[FeePrice]]]:
    """Every item with its prices, newest first."""
    items = session.scalars(select(FeeItem).where(FeeItem.municipality_id == municipality_id).order_by(FeeItem.id))
    return [(item, list(session.scalars(select(FeePrice).where(FeePrice.item_id == item.id)
                                        .order_by(FeePrice.valid_from.desc())))) for item in items]


def create_user(session: Session, municipality_code: str, username: str, role: str, password: str, *,
                counter_code: str | None = None, actor: str) -> StaffUser:
    """Create a staff account; the password is kept only as a salted hash."""
    if role not in ROLES:
        raise GatewayError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", code="unknown_role", status=422)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise GatewayError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", code="weak_password",
                           status=422)
    municipality_id = session.scalar(select(Municipality.id).where(Municipality.code == municipality_code))
    if municipality_id is None:
        raise NotFound(f"municipality {municipality_code} is not configured")
    with transaction(session):
        user = StaffUser(municipality_id=municipality_id, username=username, role=role, counter_code=counter_code,
                         password_hash=generate_password_hash(password))
        session.add(user)
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(f"a user {username!r} exists already", code="user_exists") from exc
        record_event(session, "user.created", "staff_user", user.id, municipality_id=municipality_id, actor=actor,
                     data={"username": username, "role": role})
    return user


def authenticate(session: Session, username: str, password: str) -> StaffUser | None:
    """The active user with this name and password, or None (the same answer for either mistake)."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username, StaffUser.active))
    if user is None:
        check_password_hash(generate_password_hash("timing"), password)  # same work either way
        return None
    return user if check_password_hash(user.password_hash, password) else None


def counter_terminals(session: Session, municipality_id: int, counter_code: str) -> tuple[Counter, list[Terminal]]:
    counter = session.scalar(select(Counter).where(Counter.municipality_id == municipality_id,
                                                   Counter.code == counter_code))
    if counter is None:
        raise NotFound(f"no counter {counter_code!r}", code="unknown_counter")
    return counter, list(session.scalars(select(Terminal).where(Terminal.counter_id == counter.id)
                                         .order_by(Terminal.id)))


def list_counters(session: Session, municipality_id: int) -> list[Counter]:
    return list(session.scalars(select(Counter).where(Counter.municipality_id == municipality_id)
                                .order_by(Counter.id)))
