"""The append-only event record of every change, and API keys for machine clients."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base


class Event(Base):
    """A recorded change. The database refuses UPDATE and DELETE on this table (triggers).

    Chained (domain.audit): `chain` is the municipality's id (0: none), `chain_seq` the
    event's place in it (1, 2, ...; unique per chain, so two writers cannot fork it), `hash`
    SHA-256 over `prev_hash`, the place and the event's canonical body.
    """

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("chain", "chain_seq", name="uq_events_chain_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key (migration 0009): taken from the row the event records, which keeps its own.
    municipality_id: Mapped[int | None] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    chain: Mapped[int] = mapped_column(Integer)
    chain_seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The request or job that recorded it (X-Request-Id, gateway.observability): not in the chained body.
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)


class AuditChainHead(Base):
    """The newest entry of each chain: its place and hash. Its row is the chain's lock while events are appended."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class ApiKey(Base):
    """A machine client's key; only its SHA-256 is stored, the key is shown once.

    `scopes`: what it may do, space separated (gateway.services.apikeys.SCOPES); `expires_at`
    None for a key that does not expire; `last_used_at` kept to the minute.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    prefix: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
