"""Matching as pure functions over plain records; the rules are data (matching.toml).

Nothing here touches the database: reconciliation.run and the counter's daily close gather
the records, these functions say what matches and what is an exception, and the callers
record the exceptions once.
"""
from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

from domain.calendar import business_day_after

RULES_FILE = Path(__file__).with_name("matching.toml")


@dataclass(frozen=True)
class Rule:
    channel: str
    key: str
    amount: str
    settle_within_days: int
    remittance: str


@cache
def rules() -> dict[str, Rule]:
    raw = tomllib.loads(RULES_FILE.read_text("utf-8"))["channels"]
    return {name: Rule(channel=name, **spec) for name, spec in raw.items()}


@dataclass(frozen=True)
class Booked:
    """A payment as the gateway recorded it."""

    payment_id: int
    channel: str
    key: str  # per the channel's rule
    amount: int  # yen, revenue
    accepted_on: date


@dataclass(frozen=True)
class Settled:
    """A payment as the provider or agency says it settled it."""

    key: str
    amount: int  # yen as settled
    settled_on: date
    ref: str  # the provider's own id, for people


@dataclass
class Matching:
    matched: list[tuple[Booked, Settled]] = field(default_factory=list)
    missing_in_settlement: list[Booked] = field(default_factory=list)
    missing_in_gateway: list[Settled] = field(default_factory=list)
    amount_mismatch: list[tuple[Booked, Settled]] = field(default_factory=list)


def match(booked: Iterable[Booked], settled: Iterable[Settled]) -> Matching:
    """Match on key and compare amounts exactly (a provider's fee is reported apart, as SettledPayment.fee)."""
    result = Matching()
    by_key = {s.key: s for s in settled}
    seen: set[str] = set()
    for payment in sorted(booked, key=lambda b: (b.accepted_on, b.payment_id)):
        entry = by_key.get(payment.key)
        if entry is None:
            result.missing_in_settlement.append(payment)
            continue
        seen.add(payment.key)
        if entry.amount == payment.amount:
            result.matched.append((payment, entry))
        else:
            result.amount_mismatch.append((payment, entry))
    unknown = (s for k, s in by_key.items() if k not in seen)
    result.missing_in_gateway = sorted(unknown, key=lambda s: (s.settled_on, s.ref))
    return result


def remittance_finding(expected: int, received: int, payments: int, fee_per_payment: int | None) -> str | None:
    """None when a grouped deposit is complete; fee_netted when short by exactly the fees; else remittance_mismatch."""
    if received == expected:
        return None
    if fee_per_payment and expected - received == fee_per_payment * payments:
        return "fee_netted"
    return "remittance_mismatch"


def final_due_by(paid_on: date) -> date:
    """Return the last business day by which a store payment's 確報 is due (the agency rule's window)."""
    return business_day_after(paid_on, rules()["agency"].settle_within_days)
