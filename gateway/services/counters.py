"""The certificate counter's places: counters and the payment terminals at each.

What they sell is in gateway.services.fee_items, who works there in staff_accounts, the
sales themselves in sales.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.models import Counter, Municipality, Terminal


def seed_counters(session: Session, municipality: Municipality, config: dict[str, Any]) -> list[str]:
    """Insert configured counters and terminals that are missing (in the caller's transaction)."""
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
        of_counter = (Terminal.municipality_id == counter.municipality_id) & (Terminal.counter_id == counter.id)
        known = set(session.scalars(select(Terminal.device_id).where(of_counter)))
        for terminal in spec.get("terminals", []):
            if terminal["device_id"] not in known:
                session.add(Terminal(counter_id=counter.id, municipality_id=counter.municipality_id,
                                     adapter=terminal.get("adapter", "square"),
                                     device_id=terminal["device_id"], name=terminal["name"]))
                added.append(f"terminal {terminal['device_id']}")
    return added


def counter_terminals(session: Session, municipality_id: int, counter_code: str) -> tuple[Counter, list[Terminal]]:
    """The counter with this code and its terminals, oldest first."""
    counter = session.scalar(select(Counter).where(Counter.municipality_id == municipality_id,
                                                   Counter.code == counter_code))
    if counter is None:
        raise NotFound(f"no counter {counter_code!r}", code="unknown_counter")
    return counter, list(session.scalars(select(Terminal).where(Terminal.municipality_id == municipality_id,
                                                                Terminal.counter_id == counter.id)
                                         .order_by(Terminal.id)))


def list_counters(session: Session, municipality_id: int) -> list[Counter]:
    """The municipality's counters, oldest first."""
    return list(session.scalars(select(Counter).where(Counter.municipality_id == municipality_id)
                                .order_by(Counter.id)))
