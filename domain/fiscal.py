"""Which fiscal year money for a claim belongs to (会計年度所属, Local Autonomy Act Enforcement Order art. 142).

A claim with a fixed due date belongs to the fiscal year (April to March) of its due date.
Money for it belongs to that year when it is received by the ward's closing cut-off (出納閉鎖,
31 May of the next year, or an earlier data cut-off the ward sets), including money received
before the year starts (前納); received after the cut-off, it belongs to the year in which it
is received (過年度収入). The date that counts is the day the payment was accepted (by a
指定納付受託者: the day the trustee accepted it, not the day the money arrived).

The rules are a table (`ATTRIBUTION`), read top to bottom; the first whose condition holds
decides. `booked_fiscal_year` applies it; tests walk every boundary of it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

FISCAL_YEAR_START_MONTH = 4  # April to March
DEFAULT_CLOSING_CUTOFF = "05-31"  # 出納閉鎖: 31 May of the year after the claim's
_CUTOFF = re.compile(r"(0[45])-(\d{2})")


def fiscal_year_of(day: date) -> int:
    """The fiscal year (April to March) `day` falls in."""
    return day.year if day.month >= FISCAL_YEAR_START_MONTH else day.year - 1


def claim_fiscal_year(due_date: date) -> int:
    """The fiscal year a claim with a fixed due date belongs to: its due date's."""
    return fiscal_year_of(due_date)


def year_start(fiscal_year: int) -> date:
    return date(fiscal_year, FISCAL_YEAR_START_MONTH, 1)


def closing_cutoff(fiscal_year: int, cutoff: str = DEFAULT_CLOSING_CUTOFF) -> date:
    """The last day money still books to `fiscal_year`: the ward's cut-off ("MM-DD", April or May) of the next year."""
    month, day = parse_cutoff(cutoff)
    return date(fiscal_year + 1, month, day)


def parse_cutoff(cutoff: str) -> tuple[int, int]:
    """("MM-DD") → (month, day); within the 出納整理期間 (1 April to 31 May), else ValueError."""
    found = _CUTOFF.fullmatch(cutoff)
    if found is None:
        raise ValueError(f"closing cut-off {cutoff!r} is not MM-DD in April or May (出納整理期間)")
    month, day = int(found[1]), int(found[2])
    date(2001, month, day)  # a real day (ValueError otherwise: 04-31)
    return month, day


@dataclass(frozen=True)
class Rule:
    """One line of the attribution table: when the money was received, and which year it books to."""

    name: str
    received: str  # "before_year_start" | "by_cutoff" | "after_cutoff"
    books_to: str  # "claim" (the claim's fiscal year) | "received" (the fiscal year of the day received)


ATTRIBUTION: tuple[Rule, ...] = (
    Rule("前納", received="before_year_start", books_to="claim"),
    Rule("現年度・出納整理期間", received="by_cutoff", books_to="claim"),
    Rule("過年度収入", received="after_cutoff", books_to="received"),
)


def attribution(due_date: date, paid_on: date, cutoff: str = DEFAULT_CLOSING_CUTOFF) -> Rule:
    """The rule of `ATTRIBUTION` that decides money for a claim due `due_date` received on `paid_on`."""
    claim_year = claim_fiscal_year(due_date)
    holds = {"before_year_start": paid_on < year_start(claim_year),
             "by_cutoff": paid_on <= closing_cutoff(claim_year, cutoff),
             "after_cutoff": paid_on > closing_cutoff(claim_year, cutoff)}
    return next(rule for rule in ATTRIBUTION if holds[rule.received])


def booked_fiscal_year(due_date: date, paid_on: date, cutoff: str = DEFAULT_CLOSING_CUTOFF) -> int:
    """The fiscal year money received on `paid_on` for a claim due `due_date` books to."""
    rule = attribution(due_date, paid_on, cutoff)
    return claim_fiscal_year(due_date) if rule.books_to == "claim" else fiscal_year_of(paid_on)
