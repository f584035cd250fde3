"""The exception queue accounting staff work through (issue 6 adds assignment and resolution)."""
from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import ReconException


def list_exceptions(session: Session, municipality_id: int, *, kind: str | None = None, status: str | None = None,
                    limit: int = 100) -> Sequence[ReconException]:
    """Return the municipality's exceptions, newest first."""
    query = select(ReconException).where(ReconException.municipality_id == municipality_id)
    if kind is not None:
        query = query.where(ReconException.kind == kind)
    if status is not None:
        query = query.where(ReconException.status == status)
    return session.scalars(query.order_by(ReconException.id.desc()).limit(limit)).all()
