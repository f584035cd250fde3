"""API keys for machine clients: each key acts for one municipality, within its scopes; only its hash is kept.

A key is read-only unless made with scopes that move money or reveal a name; each use of
one of those is an audit event naming the key (never the key itself).
"""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import transaction, utcnow
from gateway.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from gateway.models import ApiKey, Municipality
from gateway.services.events import record_event
from gateway.services.reference import get_municipality

KEY_PREFIX = "kk_"
AGENCY_IMPORT = "agency:import:"  # + the agency adapter's name: a key imports one agency's files
SCOPES: dict[str, str] = {
    "slips:read": "look up slips, their barcodes and fund types (no names)",
    "payments:read": "read payments",
    "reconciliation:read": "read reconciliation runs, the exception queue and expected remittances",
    "payments:write": "start payments of slips",
    "slips:reissue": "reissue slips",
    "deposits:write": "record agencies' deposits",
    "personal-data:read": "download slip PDFs, which carry the payer's name",
    AGENCY_IMPORT + "<adapter>": "import that one collection agency's files (速報/確報/取消)",
}
READ_ONLY = ("slips:read", "payments:read", "reconciliation:read")
# Scopes whose every use is an audit event: they move money or reveal a name.
AUDITED = frozenset({"payments:write", "slips:reissue", "deposits:write", "personal-data:read"})
LAST_USE_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most once a minute a key
_ADAPTER = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class KeyInfo:
    name: str
    prefix: str
    municipality_code: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, each once, sorted; ValidationFailed naming an unknown one."""
    checked = set()
    for scope in scopes:
        scope = scope.strip()
        if scope.startswith(AGENCY_IMPORT):
            if not _ADAPTER.fullmatch(scope.removeprefix(AGENCY_IMPORT)):
                raise ValidationFailed(f"scope {scope!r}: name one agency adapter, as in agency:import:agency-fixed120",
                                       code="unknown_scope")
        elif scope not in SCOPES:
            raise ValidationFailed(f"unknown scope {scope!r}; scopes: {', '.join(SCOPES)}", code="unknown_scope")
        checked.add(scope)
    return tuple(sorted(checked))


def audited(scope: str) -> bool:
    return scope in AUDITED or scope.startswith(AGENCY_IMPORT)


def create_api_key(session: Session, name: str, municipality_code: str, *, actor: str,
                   scopes: Iterable[str] = READ_ONLY, expires_at: datetime | None = None) -> str:
    """Create a key and return it; it is never shown again. Read-only unless `scopes` say more."""
    granted = check_scopes(scopes)
    if not granted:
        raise ValidationFailed("a key needs at least one scope", code="unknown_scope")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("the expiry is in the past", code="invalid_expiry")
    muni = get_municipality(session, municipality_code)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction(session):
        row = ApiKey(name=name, municipality_id=muni.id, prefix=key[:10], key_hash=_digest(key),
                     scopes=" ".join(granted), expires_at=expires_at)
        session.add(row)
        session.flush()
        record_event(session, "api_key.created", "api_key", row.id, municipality_id=muni.id, actor=actor,
                     data={"name": name, "prefix": row.prefix, "scopes": list(granted),
                           "expires_at": None if expires_at is None else expires_at.isoformat()})
    return key


def revoke_api_keys(session: Session, name: str, *, actor: str) -> int:
    """Revoke every live key named `name`; the count. NotFound when there is none."""
    with transaction(session):
        rows = list(session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
                                    .with_for_update()))
        if not rows:
            raise NotFound(f"no live API key is named {name!r}", code="unknown_api_key")
        now = utcnow()
        for row in rows:
            row.revoked_at = now
            record_event(session, "api_key.revoked", "api_key", row.id, municipality_id=row.municipality_id,
                         actor=actor, data={"name": row.name, "prefix": row.prefix})
    return len(rows)


def list_api_keys(session: Session) -> list[KeyInfo]:
    rows = session.execute(select(ApiKey, Municipality.code)
                           .join(Municipality, Municipality.id == ApiKey.municipality_id)
                           .order_by(ApiKey.name, ApiKey.id)).all()
    return [KeyInfo(key.name, key.prefix, code, tuple(key.scopes.split()), key.created_at, key.expires_at,
                    key.last_used_at, key.revoked_at) for key, code in rows]


def authenticate(session: Session, key: str) -> ApiKey:
    """Return the live API key row for `key` or raise Unauthorized (unknown, revoked or expired).

    The lookup is by SHA-256 of a 256-bit random key, so timing reveals nothing useful.
    """
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(key), ApiKey.revoked_at.is_(None)))
    if row is None:
        raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
    now = utcnow()
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("the API key has expired", code="expired_api_key")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USE_RESOLUTION:
        with transaction(session):
            session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now)
                            .execution_options(synchronize_session=False))
    return row


def authorize(session: Session, row: ApiKey, scope: str, *, operation: str, subject: str) -> None:
    """Raise Forbidden unless the key has `scope`; record the use of an audited scope (its own transaction)."""
    if scope not in row.scopes.split():
        raise Forbidden(f"this API key lacks the scope {scope}", code="insufficient_scope", details={"scope": scope})
    if audited(scope):
        with transaction(session):
            record_event(session, "api_key.used", "api_key", row.id, municipality_id=row.municipality_id,
                         actor=f"api:{row.name}",
                         data={"prefix": row.prefix, "scope": scope, "operation": operation, "subject": subject})


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
