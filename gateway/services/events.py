"""Append to the event record, in the caller's transaction. Never personal data in `data`."""
from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from gateway.db import utcnow
from gateway.models import Event, table


def record_event(session: Session, kind: str, subject_type: str, subject_id: object, *,
                 municipality_id: int | None, data: dict[str, Any] | None = None,
                 actor: str = "system") -> None:
    """Add one event to the current transaction."""
    record_events(session, [dict(kind=kind, subject_type=subject_type, subject_id=str(subject_id),
                                 municipality_id=municipality_id, data=data or {}, actor=actor)])


def record_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Add many events (dicts of Event columns) to the current transaction at once."""
    if not events:
        return
    now = utcnow()
    session.connection().execute(insert(table(Event)),
                                 [{"recorded_at": now, "actor": "system", "data": {}, **e} for e in events])
