"""The counter's fee catalogue: fee items (certificates and the like) and their fees over time.

A fee is never changed in place: a new FeePrice applies from a date, so a sale made earlier
keeps the fee it was sold at. Not the system usage fees of gateway/fees.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import transaction
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.models import FeeItem, FeePrice, FundType, Municipality
from gateway.services.events import record_event


def seed_fee_items(session: Session, municipality: Municipality, config: dict[str, Any]) -> list[str]:
    """Insert configured fee items that are missing, each with its fee (in the caller's transaction)."""
    added: list[str] = []
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
        session.add(FeePrice(item_id=item.id, municipality_id=municipality.id,
                             fee=spec["fee"], valid_from=date(2000, 4, 1), set_by="configuration"))
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
        fee = fee_on(session, municipality_id, item.id, on)
        if fee is not None:
            entries.append(CatalogueEntry(item.id, item.code, item.name, item.fund_type_id, fee))
    return entries


def fee_on(session: Session, municipality_id: int, item_id: int, on: date) -> int | None:
    """The ward's item's fee on a date: the newest price that applies from that date or earlier."""
    return session.scalar(select(FeePrice.fee).where(FeePrice.municipality_id == municipality_id,
                                                     FeePrice.item_id == item_id, FeePrice.valid_from <= on)
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
        price = FeePrice(item_id=item.id, municipality_id=municipality_id, fee=fee, valid_from=valid_from, set_by=actor)
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
    return [(item, list(session.scalars(select(FeePrice).where(FeePrice.municipality_id == municipality_id,
                                                               FeePrice.item_id == item.id)
                                        .order_by(FeePrice.valid_from.desc())))) for item in items]
