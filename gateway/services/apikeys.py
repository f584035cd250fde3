"""API keys for machine clients: each key acts for one municipality; only its hash is kept."""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import transaction
from gateway.errors import Unauthorized
from gateway.models import ApiKey
from gateway.services.events import record_event
from gateway.services.reference import get_municipality

KEY_PREFIX = "kk_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(session: Session, name: str, municipality_code: str, *, actor: str) -> str:
    """Create a key and return it; it is never shown again."""
    muni = get_municipality(session, municipality_code)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction(session):
        row = ApiKey(name=name, municipality_id=muni.id, prefix=key[:10], key_hash=_digest(key))
        session.add(row)
        session.flush()
        record_event(session, "api_key.created", "api_key", row.id, municipality_id=muni.id,
                     data={"name": name, "prefix": row.prefix}, actor=actor)
    return key


def authenticate(session: Session, key: str) -> ApiKey:
    """Return the live API key row for `key` or raise Unauthorized.

    The lookup is by SHA-256 of a 256-bit random key, so timing reveals nothing useful.
    """
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(key), ApiKey.revoked_at.is_(None)))
    if row is None:
        raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
    return row
