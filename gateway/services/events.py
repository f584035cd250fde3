"""Append to the event record, in the caller's transaction. Never personal data in `data`.

Each event carries the id of the request or job that recorded it (gateway.observability): a
correlation, outside the chained body, whose form is a contract (domain.audit).

Events are chained (domain.audit). The chain's head row is its lock, so it is taken as late
as it can be: `record_events` keeps the events with the session, and they are written, each
with its place and hashes, just before the transaction commits (the session's before_commit).
A long import therefore holds its municipality's chain for the moments of its commit, not
for its whole run, and webhooks of that municipality do not queue behind it. A rolled back
transaction records nothing.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, event, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from domain.audit import GENESIS, canonical_body, chain_hash, chain_of
from gateway.db import utcnow
from gateway.models import AuditChainHead, Event, table
from gateway.observability.context import current_request_id

PENDING = "kokin.pending_events"
_events, _heads = table(Event), table(AuditChainHead)


def record_event(session: Session, kind: str, subject_type: str, subject_id: object, *,
                 municipality_id: int | None, data: dict[str, Any] | None = None,
                 actor: str = "system") -> None:
    """Add one event to the current transaction."""
    record_events(session, [dict(kind=kind, subject_type=subject_type, subject_id=str(subject_id),
                                 municipality_id=municipality_id, data=data or {}, actor=actor)])


def record_events(session: Session, events: list[dict[str, Any]]) -> None:
    """Add many events (dicts of Event columns) to the current transaction; written when it commits."""
    if not events:
        return
    now, request_id = utcnow(), current_request_id()
    if not session.in_transaction():
        session.begin()  # so that a rollback before any statement still forgets these events
    session.info.setdefault(PENDING, []).extend(
        {"recorded_at": now, "actor": "system", "data": {}, "municipality_id": None, "request_id": request_id, **e}
        for e in events)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending = session.info.pop(PENDING, None)
    if pending:
        append_chained(session.connection(), pending)


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, _previous: object) -> None:
    # Every rollback, also of a transaction that had not reached the database yet (no savepoints here).
    session.info.pop(PENDING, None)


def append_chained(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the events in the order they were recorded, each chain's under its head row's lock (held until commit).

    Chains are locked in ascending order, so two transactions that write to the same chains
    take their locks in the same order.
    """
    by_chain: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_chain[chain_of(row["municipality_id"])].append(row)
    heads = {}
    for chain in sorted(by_chain):
        batch = by_chain[chain]
        last, previous = _advance(connection, chain, len(batch))
        for seq, row in enumerate(batch, start=last - len(batch) + 1):
            body = canonical_body(row["municipality_id"], row["kind"], row["subject_type"], row["subject_id"],
                                  row["actor"], row["recorded_at"], row["data"])
            row.update(chain=chain, chain_seq=seq, prev_hash=previous)
            previous = row["hash"] = chain_hash(previous, seq, body)
        heads[chain] = previous
    for start in range(0, len(rows), 10_000):
        connection.execute(insert(_events), rows[start:start + 10_000])
    for chain, newest in heads.items():
        connection.execute(update(_heads).where(_heads.c.chain == chain).values(hash=newest))


def _advance(connection: Connection, chain: int, count: int) -> tuple[int, str]:
    """Move the chain's head `count` places on (locking its row); (the new last place, the hash before)."""
    advance = (update(_heads).where(_heads.c.chain == chain).values(seq=_heads.c.seq + count)
               .returning(_heads.c.seq, _heads.c.hash))
    found = connection.execute(advance).first()
    if found is None:  # the chain's first event: make its head (two first writers: one row, both wait on it)
        dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        connection.execute(dialect_insert(_heads).values(chain=chain, seq=0, hash=GENESIS)
                           .on_conflict_do_nothing(index_elements=["chain"]))
        found = connection.execute(advance).one()
    return int(found.seq), str(found.hash)
