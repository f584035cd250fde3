"""Find a slip, a payment or an exception of the ward by what a clerk has in hand.

The criteria: a slip number (or its first digits), the core system's assessment id, a payer
reference, an amount in yen and a date range. The payer reference is personal data: the ward
keeps only its keyed hash (gateway.crypto), so the typed reference is hashed the same way and
matched on the hash; it is never stored, logged or put in a URL. Every query is the ward's own,
and each group of results is bounded.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from gateway.errors import InvalidSearch
from gateway.models import Assessment, Municipality, Payment, ReconException, Slip
from gateway.models.base import on_ward

LIMIT = 100
TOKYO = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Criteria:
    slip_number: str | None = None
    assessment_id: str | None = None
    payer_ref: str | None = None
    amount: int | None = None
    date_from: date | None = None
    date_to: date | None = None

    def empty(self) -> bool:
        return not any((self.slip_number, self.assessment_id, self.payer_ref, self.amount is not None,
                        self.date_from, self.date_to))


@dataclass
class Found:
    slips: list[Slip] = field(default_factory=list)
    payments: list[tuple[Payment, str | None]] = field(default_factory=list)  # with its slip's number
    exceptions: list[ReconException] = field(default_factory=list)
    more: set[str] = field(default_factory=set)  # the groups cut at LIMIT


def _plain(value: str | None) -> str:
    """Full-width digits and spaces as a clerk may type them, made plain."""
    return unicodedata.normalize("NFKC", value or "").strip()


def parse_criteria(form: Mapping[str, str]) -> Criteria:
    """The criteria of a search form; InvalidSearch naming the field on a bad value, or when there is none."""
    number = _plain(form.get("slip_number")).replace("-", "")
    if number and (not number.isdigit() or len(number) > 16):
        raise InvalidSearch("slip_number", "a slip number is up to 16 digits")
    amount_text = _plain(form.get("amount")).replace(",", "").removesuffix("円")
    if amount_text and not amount_text.isdigit():
        raise InvalidSearch("amount", "an amount is a whole number of yen")
    dates = []
    for name in ("date_from", "date_to"):
        value = _plain(form.get(name))
        try:
            dates.append(date.fromisoformat(value) if value else None)
        except ValueError:
            raise InvalidSearch(name, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None
    if dates[0] and dates[1] and dates[0] > dates[1]:
        raise InvalidSearch("date_to", "the date range ends before it starts")
    criteria = Criteria(slip_number=number or None, assessment_id=_plain(form.get("assessment_id")) or None,
                        payer_ref=_plain(form.get("payer_ref")) or None,
                        amount=int(amount_text) if amount_text else None, date_from=dates[0], date_to=dates[1])
    if criteria.empty():
        raise InvalidSearch("criteria", "give at least one criterion")
    return criteria


def _bounded(session: Session, query: Any, name: str, found: Found) -> list[Any]:
    rows = list(session.execute(query.limit(LIMIT + 1)).all())
    if len(rows) > LIMIT:
        found.more.add(name)
    return rows[:LIMIT]


def _moment(day: date, *, end: bool = False) -> datetime:
    return datetime.combine(day + timedelta(days=1) if end else day, time(0), TOKYO)


def _narrowed(query: Any, c: Criteria, assessments: Any, *, assessment_column: Any, amount_column: Any,
              moment_column: Any) -> Any:
    """`query` (of slips or payments, joined to their slip) kept to the rows every criterion given allows."""
    if c.slip_number:
        query = query.where(Slip.number.startswith(c.slip_number, autoescape=True))
    if assessments is not None:
        query = query.where(assessment_column.in_(assessments))
    if c.amount is not None:
        query = query.where(amount_column == c.amount)
    if c.date_from:
        query = query.where(moment_column >= _moment(c.date_from))
    if c.date_to:
        query = query.where(moment_column < _moment(c.date_to, end=True))
    return query


def search(session: Session, cipher: Any, municipality_id: int, c: Criteria) -> Found:
    """Slips, payments and exceptions of the ward that meet every criterion given."""
    found = Found()
    code = session.scalar(select(Municipality.code).where(Municipality.id == municipality_id))
    assessment_where: list[ColumnElement[bool]] = []
    if c.assessment_id:
        assessment_where.append(Assessment.source_key == c.assessment_id)
    if c.payer_ref:
        assessment_where.append(Assessment.payer_ref_hmac == cipher.payer_ref_hmac(code, c.payer_ref))
    assessments = (select(Assessment.id).where(Assessment.municipality_id == municipality_id, *assessment_where)
                   if assessment_where else None)

    slips = _narrowed(select(Slip).where(Slip.municipality_id == municipality_id), c, assessments,
                      assessment_column=Slip.assessment_id, amount_column=Slip.amount, moment_column=Slip.issued_at)
    found.slips = [row[0] for row in _bounded(session, slips.order_by(Slip.number, Slip.reissue), "slips", found)]

    payments = _narrowed(select(Payment, Slip.number).outerjoin(Slip, on_ward(Payment, "slip_id", Slip))
                         .where(Payment.municipality_id == municipality_id), c, assessments,
                         assessment_column=Payment.assessment_id, amount_column=Payment.amount,
                         moment_column=Payment.created_at)
    found.payments = [(row[0], row[1]) for row in _bounded(session, payments.order_by(Payment.id.desc()),
                                                           "payments", found)]

    exceptions = select(ReconException).where(ReconException.municipality_id == municipality_id)
    if c.slip_number:
        exceptions = exceptions.where(ReconException.slip_number.startswith(c.slip_number, autoescape=True))
    if assessments is not None:
        exceptions = exceptions.where(ReconException.payment_id.in_(
            select(Payment.id).where(Payment.municipality_id == municipality_id,
                                     Payment.assessment_id.in_(assessments))))
    if c.amount is not None:
        exceptions = exceptions.where(and_(ReconException.amount.is_not(None),
                                           ReconException.amount.in_((c.amount, -c.amount))))
    if c.date_from:
        exceptions = exceptions.where(ReconException.business_date >= c.date_from)
    if c.date_to:
        exceptions = exceptions.where(ReconException.business_date <= c.date_to)
    found.exceptions = [row[0] for row in _bounded(session, exceptions.order_by(ReconException.id.desc()),
                                                   "exceptions", found)]
    return found
