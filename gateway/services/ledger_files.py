"""A core-system file on record: one row per ward it carries, found again by its SHA-256.

A ledger or status file may carry several wards. Distributed by municipality (docs/scaling.md),
each ward's rows live on its node, so each ward's part of the file is on record there
(ledger_imports, keyed by (sha256, ward)); the assessments and revisions a file changed point at
their own ward's row. The same bytes again are known by their digest and the wards their lines
name, and change nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, case, literal, select
from sqlalchemy.orm import Session

from domain.layouts import Layout, field_values
from gateway.models import LedgerImport, Municipality

WARD_FIELD = "municipality_code"  # every line of a ledger or status file names its ward


@dataclass(frozen=True)
class FileOnRecord:
    """A file imported before: its name and layout, and its lines and total over every ward it carried."""

    filename: str
    layout: str
    records: int
    total_amount: int


@dataclass(frozen=True)
class WardPart:
    """A ward's lines of a file: how many and their total (yen)."""

    records: int
    total_amount: int


def file_on_record(session: Session, layout: Layout, data: bytes, digest: str) -> FileOnRecord | None:
    """The file (`data`, its SHA-256 `digest`) if it was imported, else None.

    Each statement names the wards it reads: a file imported before has a row for every ward
    its lines carry, its first line's among them. That one row is looked up first, on that
    ward's node (docs/scaling.md), after reading the first line alone; only a file found there
    is looked through for all its wards. A file whose first line names no ward here was never
    imported (each of its lines was checked then).
    """
    first = _wards(session, field_values(layout, data, WARD_FIELD, limit=1))
    if not first or session.scalar(select(LedgerImport.id).where(LedgerImport.municipality_id == first[0],
                                                                 LedgerImport.sha256 == digest)) is None:
        return None
    wards = _wards(session, field_values(layout, data, WARD_FIELD))
    rows = session.execute(select(LedgerImport.filename, LedgerImport.layout, LedgerImport.records,
                                  LedgerImport.total_amount)
                           .where(LedgerImport.municipality_id.in_(wards), LedgerImport.sha256 == digest)
                           .order_by(LedgerImport.id)).all()
    return FileOnRecord(rows[0].filename, rows[0].layout, sum(row.records for row in rows),
                        sum(row.total_amount for row in rows))


def _wards(session: Session, codes: list[str]) -> list[int]:
    """The ids of the municipalities of these codes that are wards here, in order (a reference table's read)."""
    if not codes:
        return []
    return list(session.scalars(select(Municipality.id).where(Municipality.code.in_(set(codes)))
                                .order_by(Municipality.id)))


def record_file(session: Session, digest: str, filename: str, layout: str,
                parts: dict[int, WardPart]) -> dict[int, LedgerImport]:
    """Put the file on record, a row per ward in ward order; {ward: its row}, ids assigned.

    A concurrent import of the same file makes one of the two fail on (sha256, ward): the
    caller's transaction then rolls back and finds the file on record.
    """
    rows = {ward: LedgerImport(municipality_id=ward, sha256=digest, filename=filename[:255], layout=layout,
                               records=part.records, total_amount=part.total_amount, created=0, amended=0,
                               unchanged=0)
            for ward, part in sorted(parts.items())}
    session.add_all(rows.values())
    session.flush()
    return rows


def import_of_ward(rows: dict[int, LedgerImport], ward: ColumnElement[int]) -> ColumnElement[int]:
    """SQL: the id of the file's row for the ward in `ward` (a column of the rows being written)."""
    if not rows:  # a file of no lines writes no rows
        return literal(None, Integer)
    return case({municipality_id: row.id for municipality_id, row in rows.items()}, value=ward)
