"""Re-encrypt personal data under the newest data key, and prove that no value needs an older one.

Every column marked `info=ENCRYPTED` in the models is walked by id (keyset pagination), a
batch per transaction, so a crash loses at most the batch in hand and a run again resumes:
a value the newest key already reads is counted and left as it is.

Which key wrote a value is found by trying the newest key alone, not recorded beside it: a
Fernet token does not name its key, and a key id per row would have to be written by every
writer (the ledger import writes names by COPY from forked readers) and migrated for the rows
already stored. Trying costs one HMAC check (and the decryption when it succeeds), a few
microseconds a row, small beside reading the row; measured in the README, "Keys".

Writers may run meanwhile: a value is replaced only where it is still the one read
(`UPDATE ... WHERE id = ? AND column = <the token read>`), so a name changed meanwhile keeps
its writer's value (counted `changed`; a writer using the newest key needs nothing more).
On SQLite each batch takes the write lock first (BEGIN IMMEDIATE): a read snapshot that
another commit made stale could not be upgraded to write.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from gateway.crypto import DataCipher, UnreadableToken
from gateway.db import transaction
from gateway.models import encrypted_columns
from gateway.progress import NoProgress, Progress
from gateway.services.ledger_import import hold_the_write_lock

BATCH = 1_000
MAX_BATCH = 10_000


@dataclass
class ColumnKeys:
    """What one encrypted column holds, as far as keys go."""

    column: str  # table.column
    rows: int = 0  # values (NULLs are not counted)
    current: int = 0  # already under the newest key
    rotated: int = 0  # re-encrypted by this run
    changed: int = 0  # rewritten by another writer between read and write: left as written
    unreadable: int = 0  # no configured key reads them
    first_unreadable_id: int | None = None

    @property
    def needs_old_key(self) -> int:
        """Values only an older key reads (a check counts every such value; a rotation, none it could write)."""
        return self.rows - self.current - self.rotated - self.changed - self.unreadable


def rotate_keys(session: Session, cipher: DataCipher, *, batch: int = BATCH,
                progress: Progress | None = None) -> list[ColumnKeys]:
    """Re-encrypt every encrypted value under the newest key, `batch` rows per transaction.

    Idempotent and resumable: values already under the newest key are counted, not
    rewritten. Values no configured key reads are counted (`unreadable`) and left.
    """
    return [_walk(session, cipher, table, column, batch, progress or NoProgress(), write=True)
            for table, column in encrypted_columns()]


def check_keys(session: Session, cipher: DataCipher, *, batch: int = BATCH,
               progress: Progress | None = None) -> list[ColumnKeys]:
    """Count, without writing, the values the newest key alone reads and those it does not."""
    return [_walk(session, cipher, table, column, batch, progress or NoProgress(), write=False)
            for table, column in encrypted_columns()]


def _walk(session: Session, cipher: DataCipher, table: Table, column: str, batch: int, progress: Progress,
          *, write: bool) -> ColumnKeys:
    found = ColumnKeys(f"{table.name}.{column}")
    ids, values, last = table.c.id, table.c[column], 0
    lock = write and session.get_bind().dialect.name == "sqlite"
    with transaction(session):
        total = session.scalar(select(func.count()).select_from(table).where(values.is_not(None))) or 0
    progress.start(f"{'rotating' if write else 'checking'} {found.column}", total)
    while True:
        with transaction(session):
            if lock:
                hold_the_write_lock(session)
            rows = session.execute(select(ids, values).where(ids > last, values.is_not(None))
                                   .order_by(ids).limit(batch)).all()
            stale = _sort(cipher, rows, found)
            if write and stale:
                _rewrite(session, table, column, stale, found)
        if not rows:
            break
        last = rows[-1][0]
        progress.advance(len(rows))
    progress.finish()
    return found


def _sort(cipher: DataCipher, rows: Sequence[Any], found: ColumnKeys) -> list[dict[str, Any]]:
    """Count the batch's current and unreadable values; return the others re-encrypted, as update parameters."""
    stale = []
    for row_id, token in rows:
        token = bytes(token)
        found.rows += 1
        if cipher.is_current(token):
            found.current += 1
            continue
        try:
            stale.append({"row_id": row_id, "old": token, "new": cipher.rotate(token)})
        except UnreadableToken:
            found.unreadable += 1
            found.first_unreadable_id = found.first_unreadable_id or row_id
    return stale


def _rewrite(session: Session, table: Table, column: str, stale: list[dict[str, Any]], found: ColumnKeys) -> None:
    """Write the re-encrypted values where the row still holds the value read (else a writer's is kept).

    A statement a row, sent together (psycopg pipelines executemany). One UPDATE ... FROM
    (VALUES ...) a batch was slower on PostgreSQL: it is planned as a scan of the whole table.
    """
    statement = update(table).where(table.c.id == bindparam("row_id"), table.c[column] == bindparam("old")) \
        .values({column: bindparam("new")})
    written = session.connection().execute(statement, stale).rowcount
    found.rotated += written
    found.changed += len(stale) - written
