"""The exception queue as accounting staff work it: filters, counts per kind and age, work in bulk.

Filters narrow the queue by kind, status, business date, channel (of the exception's payment, or
`agency` for an agency record without one), assignee and age (days since the business date, in
bands). The counts on the queue's top are one GROUP BY over the open work. Bulk actions take
many exceptions at once with one reason, all or nothing: every selected exception is locked
and checked first, and if any cannot take the action nothing changes and each refusal is named.
Each item still goes through the same steps as one at a time (the playbook, four eyes, the
audit record).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, select
from sqlalchemy.orm import Session

from gateway.db import transaction
from gateway.errors import BulkRefused, GatewayError, InvalidFilter
from gateway.models import CHANNELS, EXCEPTION_KINDS, Payment, ReconException
from gateway.models.base import on_ward
from gateway.services import exceptions as one

STATUSES = ("open", "pending_approval", "resolved")
# Age bands: (name, youngest day, oldest day or None), by days since the business date.
AGES = (("0-2", 0, 2), ("3-7", 3, 7), ("8-30", 8, 30), ("31-", 31, None))
MAX_BULK = 500
ACTIONS = ("assign", "resolve", "approve", "send_back")


@dataclass(frozen=True)
class QueueFilter:
    kind: str | None = None
    status: str | None = "open"
    date_from: date | None = None
    date_to: date | None = None
    channel: str | None = None
    assignee: str | None = None  # a name, "-" for nobody
    age: str | None = None


def parse_filter(args: Mapping[str, str], *, me: str) -> QueueFilter:
    """The queue's filter from a page's query; InvalidFilter naming the field on a bad value."""
    def choice(name: str, allowed: Sequence[str]) -> str | None:
        value = (args.get(name) or "").strip()
        if value and value not in allowed:
            raise InvalidFilter(name, f"{name}: {value!r} is not one of {', '.join(allowed)}")
        return value or None

    def day(name: str) -> date | None:
        value = (args.get(name) or "").strip()
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            raise InvalidFilter(name, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None

    status = (args.get("status") or "open").strip()  # the open work unless asked otherwise; "all" for every one
    if status not in (*STATUSES, "all"):
        raise InvalidFilter("status", f"status: {status!r} is not one of {', '.join(STATUSES)}, all")
    found = QueueFilter(kind=choice("kind", EXCEPTION_KINDS), status=None if status == "all" else status,
                        date_from=day("from"), date_to=day("to"), channel=choice("channel", CHANNELS),
                        assignee=me if args.get("assignee") == "me" else (args.get("assignee") or "").strip() or None,
                        age=choice("age", [name for name, _young, _old in AGES]))
    if found.date_from and found.date_to and found.date_from > found.date_to:
        raise InvalidFilter("to", "the date range ends before it starts")
    return found


def _channel() -> ColumnElement[str]:
    return func.coalesce(Payment.channel, case((ReconException.agency_report_id.is_not(None), literal("agency"))))


def _age_band(today: date) -> ColumnElement[str]:
    whens = []
    for name, _young, old in AGES:
        if old is not None:
            whens.append((ReconException.business_date >= today - timedelta(days=old), literal(name)))
    return case(*whens, else_=literal(AGES[-1][0]))


def _where(query: Any, f: QueueFilter, today: date) -> Any:
    e = ReconException
    if f.kind:
        query = query.where(e.kind == f.kind)
    if f.status:
        query = query.where(e.status == f.status)
    if f.date_from:
        query = query.where(e.business_date >= f.date_from)
    if f.date_to:
        query = query.where(e.business_date <= f.date_to)
    if f.channel:
        query = query.where(_channel() == f.channel)
    if f.assignee == "-":
        query = query.where(e.assigned_to.is_(None))
    elif f.assignee:
        query = query.where(e.assigned_to == f.assignee)
    if f.age:
        _name, young, old = next(band for band in AGES if band[0] == f.age)
        query = query.where(e.business_date <= today - timedelta(days=young))
        if old is not None:
            query = query.where(e.business_date >= today - timedelta(days=old))
    return query


@dataclass(frozen=True)
class Row:
    item: ReconException
    channel: str | None
    age_days: int


def queue(session: Session, municipality_id: int, f: QueueFilter, *, today: date,
          limit: int = 200) -> tuple[list[Row], int]:
    """The exceptions the filter keeps, oldest business date first (the longest waiting on top); and how many."""
    base = (select(ReconException, _channel()).outerjoin(Payment, on_ward(ReconException, "payment_id", Payment))
            .where(ReconException.municipality_id == municipality_id))
    base = _where(base, f, today)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.execute(base.order_by(ReconException.business_date, ReconException.id).limit(limit)).all()
    return [Row(item, channel, (today - item.business_date).days) for item, channel in rows], total


def counts(session: Session, municipality_id: int, *, today: date) -> dict[str, dict[str, int]]:
    """Open and pending exceptions per kind and age band: {kind: {band: count}}, kinds with none left out."""
    band = _age_band(today).label("band")
    rows = session.execute(select(ReconException.kind, band, func.count())
                           .where(ReconException.municipality_id == municipality_id,
                                  ReconException.status.in_(("open", "pending_approval")))
                           .group_by(ReconException.kind, band)).all()
    table: dict[str, dict[str, int]] = {}
    for kind, name, count in rows:
        table.setdefault(kind, {})[name] = count
    return {kind: table[kind] for kind in EXCEPTION_KINDS if kind in table}


def bulk(session: Session, municipality_id: int, ids: Sequence[int], action: str, *, actor: str,
         resolution: str = "", note: str = "", assignee: str = "") -> int:
    """Take `action` on every selected exception with one reason, all or nothing; how many were changed."""
    chosen = sorted(set(ids))
    if not chosen:
        raise GatewayError("select at least one exception", code="nothing_selected", status=422)
    if len(chosen) > MAX_BULK:
        raise GatewayError(f"at most {MAX_BULK} exceptions at once ({len(chosen)} selected)", code="too_many_selected",
                           status=422)
    if action not in ACTIONS:
        raise GatewayError(f"unknown action {action!r}", code="unknown_action", status=422)
    if action == "resolve":
        one.check_resolution(resolution, note)
    with transaction(session):
        items = list(session.scalars(select(ReconException).where(ReconException.municipality_id == municipality_id,
                                                                  ReconException.id.in_(chosen))
                                     .order_by(ReconException.id).with_for_update()))
        found = {item.id for item in items}
        refusals: list[tuple[int, str]] = [(i, "unknown_exception") for i in chosen if i not in found]
        if action == "resolve" and len({item.kind for item in items}) > 1:
            raise GatewayError("resolve exceptions of one kind at a time", code="mixed_kinds", status=422)
        for item in items:
            refusal = (one.resolve_refusal(session, item, resolution) if action == "resolve"
                       else one.decide_refusal(item, actor) if action in ("approve", "send_back") else None)
            if refusal is not None:
                refusals.append((item.id, refusal.code))
        if refusals:
            raise BulkRefused(sorted(refusals))
        for item in items:
            if action == "assign":
                one.assign_step(session, item, assignee, actor)
            elif action == "resolve":
                one.resolve_step(session, item, resolution, note, actor)
            else:
                one.decide_step(session, item, action == "approve", actor)
    return len(items)


def assignees(session: Session, municipality_id: int) -> list[str]:
    """The people exceptions of the ward are assigned to, for the filter's choices."""
    return list(session.scalars(select(ReconException.assigned_to).distinct()
                                .where(ReconException.municipality_id == municipality_id,
                                       ReconException.assigned_to.is_not(None))
                                .order_by(ReconException.assigned_to)))
