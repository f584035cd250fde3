"""Idempotency keys: the same key and body replay the first response; another body is refused.

The key row is claimed with an insert the database keeps unique, so concurrent requests
with one key run the operation once: the others see it in progress or its stored response.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import transaction, utcnow
from gateway.errors import GatewayError, IdempotencyConflict, IdempotencyInProgress
from gateway.models import IdempotencyKey
from gateway.services.reference import ward_ids

RETENTION = timedelta(hours=48)  # the contract promises at least 24 h


@dataclass(frozen=True)
class Claim:
    key_id: int | None  # ours to complete; None when `replay` holds the stored response
    replay: tuple[int, dict[str, Any]] | None = None


def request_hash(body: Any) -> str:
    """Hash a request body canonically (key order and spacing do not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def claim(session: Session, municipality_id: int, key: str, body_hash: str) -> Claim:
    """Claim `key` for this request, or return the stored response of the first one."""
    if not 1 <= len(key) <= 255:
        raise GatewayError("Idempotency-Key must be 1 to 255 characters", code="invalid_idempotency_key", status=422)
    try:
        with transaction(session):
            row = IdempotencyKey(municipality_id=municipality_id, key=key, request_hash=body_hash,
                                 expires_at=utcnow() + RETENTION)
            session.add(row)
        return Claim(row.id)
    except IntegrityError:
        pass
    existing = session.scalar(select(IdempotencyKey).where(IdempotencyKey.municipality_id == municipality_id,
                                                           IdempotencyKey.key == key))
    session.rollback()
    if existing is None:  # expired and purged between our insert and this read
        return claim(session, municipality_id, key, body_hash)
    if existing.request_hash != body_hash:
        raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
    if existing.response_status is None:
        raise IdempotencyInProgress("a request with this Idempotency-Key is still being processed; retry shortly")
    return Claim(None, (existing.response_status, existing.response_body or {}))


def complete(session: Session, municipality_id: int, key_id: int, status: int, body: dict[str, Any]) -> None:
    """Store the response to replay for the ward's key."""
    with transaction(session):
        session.execute(update(IdempotencyKey).where(IdempotencyKey.municipality_id == municipality_id,
                                                     IdempotencyKey.id == key_id)
                        .values(response_status=status, response_body=body))


def release(session: Session, municipality_id: int, key_id: int) -> None:
    """Forget the ward's key after a failure worth retrying, so the client's retry runs again."""
    with transaction(session):
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.municipality_id == municipality_id,
                                                     IdempotencyKey.id == key_id))


def purge_expired(session: Session) -> int:
    """Delete keys past their retention, ward by ward (each ward's on its node); return how many."""
    purged, now = 0, utcnow()
    for ward in ward_ids(session):
        with transaction(session):
            result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.municipality_id == ward,
                                                                  IdempotencyKey.expires_at < now))
        purged += int(getattr(result, "rowcount", 0) or 0)
    return purged
