"""Server-side staff sessions: opened at sign-in, looked up on every request, revoked for good.

The browser's cookie carries only a random token; the database keeps its SHA-256, so a copy
of the table signs nobody in. Logout, the idle timeout, the absolute lifetime, a lock and a
password reset revoke sessions; a revoked one is refused whatever cookie brings it back.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import transaction, utcnow
from gateway.models import StaffSession, StaffUser
from gateway.services.events import record_event

TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
PENDING_FOR = timedelta(minutes=10)  # from the password to the second factor


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives: `idle` without a request, `lifetime` whatever happens."""

    idle: timedelta = timedelta(minutes=30)
    lifetime: timedelta = timedelta(hours=12)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SessionPolicy:
        return cls(idle=timedelta(minutes=float(config.get("STAFF_IDLE_TIMEOUT_MINUTES", 30))),
                   lifetime=timedelta(hours=float(config.get("STAFF_SESSION_HOURS", 12))))


def token_id(token: str) -> str:
    """The row id of a session token (its SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(session: Session, user: StaffUser, address: str | None, *, complete: bool,
                 now: datetime) -> str:
    """Add a session for `user` to the caller's transaction; return its token (shown to nobody else)."""
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(id=token_id(token), user_id=user.id, complete=complete, created_at=now,
                             last_seen_at=now, ip=(address or "")[:45] or None))
    return token


def find_session(session: Session, token: str) -> tuple[StaffSession, StaffUser] | None:
    """The session of `token` and its user, revoked or not."""
    found = session.execute(select(StaffSession, StaffUser).join(StaffUser, StaffUser.id == StaffSession.user_id)
                            .where(StaffSession.id == token_id(token))).first()
    return None if found is None else (found[0], found[1])


def signed_in_user(session: Session, token: str, policy: SessionPolicy, now: datetime | None = None
                   ) -> StaffUser | None:
    """The user of a complete, live session, or None; a session found expired is revoked and audited.

    Notes the request in last_seen_at, at most once a minute (a write per request would cost
    more than the idle timeout needs).
    """
    now = now or utcnow()
    found = find_session(session, token)
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or not row.complete or not user.active:
        return None
    reason = "idle" if now - row.last_seen_at > policy.idle else \
        "lifetime" if now - row.created_at > policy.lifetime else None
    if reason is not None:
        with transaction(session):
            if revoke_rows(session, [row.id], reason, now):
                record_event(session, "user.session_expired", "staff_user", user.id,
                             municipality_id=user.municipality_id, actor=user.username,
                             data={"username": user.username, "reason": reason})
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with transaction(session):
            session.execute(update(StaffSession).where(StaffSession.id == row.id).values(last_seen_at=now))
    return user


def pending_sign_in(session: Session, token: str, now: datetime | None = None
                    ) -> tuple[StaffSession, StaffUser] | None:
    """The session of a user between the password and the second factor, if still within its minutes."""
    now = now or utcnow()
    found = find_session(session, token)
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or row.complete or not user.active or now - row.created_at > PENDING_FOR:
        return None
    return row, user


def sign_out(session: Session, token: str) -> None:
    """Revoke the session of `token` (logout): its cookie, or any copy of it, is refused from now on."""
    found = find_session(session, token)
    if found is None:
        return
    row, user = found
    with transaction(session):
        if revoke_rows(session, [row.id], "logout", utcnow()):
            record_event(session, "user.signed_out", "staff_user", user.id, municipality_id=user.municipality_id,
                         actor=user.username, data={"username": user.username})


def revoke_rows(session: Session, ids: list[str], reason: str, now: datetime) -> int:
    """Revoke these sessions (those not revoked yet) in the caller's transaction; how many were live."""
    result = session.execute(update(StaffSession).where(StaffSession.id.in_(ids), StaffSession.revoked_at.is_(None))
                             .values(revoked_at=now, revoked_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)


def revoke_sessions_of(session: Session, user_id: int, reason: str, now: datetime, *,
                       keep: str | None = None) -> int:
    """Revoke every live session of a user but `keep` (a row id), in the caller's transaction."""
    query = update(StaffSession).where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None))
    if keep is not None:
        query = query.where(StaffSession.id != keep)
    result = session.execute(query.values(revoked_at=now, revoked_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)
