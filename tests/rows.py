"""Rows by id alone, for tests: a test knows an id; the gateway's own statements name the ward too."""
from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

T = TypeVar("T")


def by_id(session: Session, model: type[T], id_: Any, *, populate_existing: bool = False) -> T | None:
    """The row of `model` with this id, whichever its ward (None if there is none); reloaded if asked."""
    query = select(model).where(model.id == id_)  # type: ignore[attr-defined]
    return session.scalars(query.execution_options(populate_existing=populate_existing)).one_or_none()


def ward_of(session: Session, model: type[Any], id_: int) -> int:
    """The ward (municipality id) of the row of `model` with this id."""
    ward = session.scalar(select(model.municipality_id).where(model.id == id_))
    assert ward is not None, f"no {model.__name__} {id_}"
    return int(ward)
