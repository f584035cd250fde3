"""A core-system file on record: one row per ward it carries, found again by its SHA-256.

A ledger or status file may carry several wards. Distributed by municipality (docs/scaling.md),
each ward's rows live on its node, so each ward's part of the file is on record there
(ledger_imports, keyed by (sha256, ward)); the assessments and revisions a file changed point at
their own ward's row. The same bytes again are known by their digest and change nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, case, literal, select
from sqlalchemy.orm import Session

from gateway.models import LedgerImport


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


def file_on_record(session: Session, digest: str) -> FileOnRecord | None:
    """The file with this SHA-256 if it was imported, else None."""
    rows = session.execute(select(LedgerImport.filename, LedgerImport.layout, LedgerImport.records,
                                  LedgerImport.total_amount)
                           .where(LedgerImport.sha256 == digest).order_by(LedgerImport.id)).all()
    if not rows:
        return None
    return FileOnRecord(rows[0].filename, rows[0].layout, sum(row.records for row in rows),
                        sum(row.total_amount for row in rows))


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
