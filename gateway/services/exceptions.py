"""The exception queue accounting staff work through (issue 6 adds assignment and resolution)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.models import ReconException, table


def list_exceptions(session: Session, municipality_id: int, *, kind: str | None = None, status: str | None = None,
                    limit: int = 100) -> Sequence[ReconException]:
    """Return the municipality's exceptions, newest first."""
    query = select(ReconException).where(ReconException.municipality_id == municipality_id)
    if kind is not None:
        query = query.where(ReconException.kind == kind)
    if status is not None:
        query = query.where(ReconException.status == status)
    return session.scalars(query.order_by(ReconException.id.desc()).limit(limit)).all()


_EXCEPTIONS_TABLE = table(ReconException)


def raise_exceptions(session: Session, municipality_id: int, exceptions: list[dict[str, Any]]) -> Counter[str]:
    """Insert exceptions not recorded before (ON CONFLICT DO NOTHING); count the new ones by kind."""
    if not exceptions:
        return Counter()
    now = utcnow()
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    new: Counter[str] = Counter()
    for start in range(0, len(exceptions), 1_000):
        chunk = [{"municipality_id": municipality_id, "status": "open", "created_at": now, "amount": None,
                  "slip_number": None, "payment_id": None, "agency_report_id": None, **e}
                 for e in exceptions[start:start + 1_000]]
        statement = (dialect_insert(_EXCEPTIONS_TABLE).values(chunk).on_conflict_do_nothing()
                     .returning(_EXCEPTIONS_TABLE.c.kind))
        new.update(session.scalars(statement).all())
    return new

