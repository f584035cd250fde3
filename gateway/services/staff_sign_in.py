"""Signing staff in: throttling per address, a lock per user, one password hash either way, TOTP.

Everything lives in the database, so every instance behind the load balancer sees the same
failures, locks and sessions. A sign-in is the password, then (for the roles in
MFA_REQUIRED_ROLES, and anyone who enrolled) a TOTP code, or the enrolment of an authenticator
first. Every outcome is an audit event; the password and the code never are.
"""
from __future__ import annotations

import functools
import hmac
import math
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import pyotp
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.db import transaction, utcnow
from gateway.errors import Conflict, SignInExpired, SignInRefused, SignInThrottled
from gateway.models import SignInFailure, StaffSession, StaffUser
from gateway.services.events import record_event
from gateway.services.staff_sessions import open_session, pending_sign_in, revoke_rows, revoke_sessions_of

MFA_REQUIRED_ROLES = ("accounting", "approver", "administrator")  # they move or approve money, or grant access
TOTP_STEP = 30  # seconds (RFC 6238's default, what every authenticator app uses)
ISSUER = "kokin-gateway"
FAILURES_KEPT = timedelta(days=1)


class Cipher(Protocol):
    def encrypt(self, text: str) -> bytes: ...
    def decrypt(self, token: bytes) -> str: ...


@dataclass(frozen=True)
class SignInPolicy:
    """Lock a user after `max_failures` in a row for `lockout` (None: until an administrator
    unlocks); refuse an address with `address_max_failures` failures within `address_window`."""

    max_failures: int = 5
    lockout: timedelta | None = timedelta(minutes=15)
    address_max_failures: int = 20
    address_window: timedelta = timedelta(minutes=10)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SignInPolicy:
        minutes = float(config.get("STAFF_LOCKOUT_MINUTES", 15))
        return cls(max_failures=int(config.get("STAFF_MAX_FAILED_SIGN_INS", 5)),
                   lockout=timedelta(minutes=minutes) if minutes > 0 else None,
                   address_max_failures=int(config.get("STAFF_ADDRESS_MAX_FAILURES", 20)),
                   address_window=timedelta(minutes=float(config.get("STAFF_ADDRESS_WINDOW_MINUTES", 10))))


@dataclass(frozen=True)
class SignInStep:
    """Where a sign-in stands: `next` is "done", "code" (TOTP) or "enrol" (an authenticator first)."""

    token: str
    next: str


def mfa_required(user: StaffUser) -> bool:
    return user.role in MFA_REQUIRED_ROLES or user.mfa_secret is not None


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, made like the users' own, for names that are not users."""
    return generate_password_hash(secrets.token_urlsafe(16))


def sign_in(session: Session, username: str, password: str, address: str, policy: SignInPolicy,
            now: datetime | None = None) -> SignInStep:
    """Check a password; open a session (complete, or waiting for the second factor).

    Exactly one password hash is verified whatever the name (a dummy hash for unknown ones),
    so the time taken does not tell who is a user. Raises SignInThrottled or SignInRefused.
    """
    now = now or utcnow()
    check_address(session, address, policy, now)
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    matches = check_password_hash(user.password_hash if user is not None else _dummy_hash(), password)
    step = None
    with transaction(session):
        if user is None:
            _fail(session, None, address, "unknown_user", policy, now)
        else:
            user = _lock_row(session, user.id)
            reason = "inactive" if not user.active else "locked" if is_locked(user, now) else \
                None if matches else "bad_password"
            if reason is not None:
                _fail(session, user, address, reason, policy, now)
            elif mfa_required(user):
                step = SignInStep(open_session(session, user, address, complete=False, now=now),
                                  "code" if user.mfa_secret is not None else "enrol")
            else:
                step = SignInStep(_signed_in(session, user, address, now, mfa=False), "done")
    if step is None:
        raise SignInRefused()
    return step


def verify_code(session: Session, cipher: Cipher, token: str, code: str, address: str, policy: SignInPolicy,
                now: datetime | None = None) -> str:
    """Check the TOTP code of a pending sign-in; return the token of the complete session.

    A code is good for its 30-second step and the steps either side (clocks drift), once:
    a step at or before the last one used is refused (RFC 6238, section 5.2).
    """
    now = now or utcnow()
    check_address(session, address, policy, now)
    pending = pending_sign_in(session, token, now)
    if pending is None or pending[1].mfa_secret is None:
        raise SignInExpired()
    row, user = pending
    done = None
    with transaction(session):
        user = _lock_row(session, user.id)
        step = None if is_locked(user, now) or user.mfa_secret is None else \
            matching_step(cipher.decrypt(user.mfa_secret), code, user.mfa_last_step, now)
        if step is None:
            _fail(session, user, address, "locked" if is_locked(user, now) else "bad_code", policy, now)
        else:
            user.mfa_last_step = step
            revoke_rows(session, [row.id], "completed", now)
            done = _signed_in(session, user, address, now, mfa=True)
    if done is None:
        raise SignInRefused()
    return done


def enrolment_secret(session: Session, cipher: Cipher, row_id: str) -> str:
    """The TOTP secret being enrolled in this session, made on first asking (kept encrypted)."""
    with transaction(session):
        row = session.get(StaffSession, row_id, with_for_update=True, populate_existing=True)
        if row is None:
            raise SignInExpired()
        if row.enrol_secret is None:
            row.enrol_secret = cipher.encrypt(pyotp.random_base32())
        secret = cipher.decrypt(row.enrol_secret)
    return secret


def provisioning_uri(secret: str, username: str) -> str:
    """The otpauth:// address an authenticator app reads from the enrolment QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def confirm_enrolment(session: Session, cipher: Cipher, row_id: str, code: str, address: str,
                      policy: SignInPolicy, now: datetime | None = None) -> str | None:
    """Enrol the session's secret once a code from it is right; finish a pending sign-in.

    Returns the new session token when this completed a sign-in, None when the session was
    complete already. A wrong code counts as a failed sign-in.
    """
    now = now or utcnow()
    check_address(session, address, policy, now)
    done: str | None = None
    with transaction(session):
        row = session.get(StaffSession, row_id, with_for_update=True, populate_existing=True)
        if row is None or row.revoked_at is not None or row.enrol_secret is None:
            raise SignInExpired()
        user = _lock_row(session, row.user_id)
        if user.mfa_secret is not None:
            raise Conflict("an authenticator is enrolled already; an administrator can reset it",
                           code="mfa_enrolled")
        secret = cipher.decrypt(row.enrol_secret)
        step = None if is_locked(user, now) else matching_step(secret, code, None, now)
        if step is not None:
            user.mfa_secret, user.mfa_enrolled_at, user.mfa_last_step = cipher.encrypt(secret), now, step
            row.enrol_secret = None
            record_event(session, "user.mfa_enrolled", "staff_user", user.id, municipality_id=user.municipality_id,
                         actor=user.username, data={"username": user.username})
            if not row.complete:
                revoke_rows(session, [row.id], "completed", now)
                done = _signed_in(session, user, address, now, mfa=True)
        else:
            _fail(session, user, address, "locked" if is_locked(user, now) else "bad_code", policy, now)
    if step is None:
        raise SignInRefused()
    return done


def matching_step(secret: str, code: str, last_step: int | None, now: datetime) -> int | None:
    """The time step `code` belongs to (now, or one step either side), if later than `last_step`."""
    digits = unicodedata.normalize("NFKC", code).replace(" ", "").replace("-", "")
    if len(digits) != 6 or not digits.isascii() or not digits.isdigit():
        return None
    totp, current = pyotp.TOTP(secret), int(now.timestamp()) // TOTP_STEP
    for step in (current - 1, current, current + 1):
        if (last_step is None or step > last_step) and hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def is_locked(user: StaffUser, now: datetime) -> bool:
    return user.locked_at is not None and (user.locked_until is None or now < user.locked_until)


def check_address(session: Session, address: str, policy: SignInPolicy, now: datetime) -> None:
    """Refuse an address with too many recent failures (SignInThrottled, with the seconds to wait)."""
    since = now - policy.address_window
    count, oldest = session.execute(select(func.count(), func.min(SignInFailure.failed_at))
                                    .where(SignInFailure.address == address, SignInFailure.failed_at > since)).one()
    session.rollback()  # a read: no transaction left open across the password hash
    if count >= policy.address_max_failures and oldest is not None:
        raise SignInThrottled(max(1, math.ceil((oldest + policy.address_window - now).total_seconds())))


def _lock_row(session: Session, user_id: int) -> StaffUser:
    user = session.get(StaffUser, user_id, with_for_update=True, populate_existing=True)
    assert user is not None  # staff accounts are deactivated, never deleted
    return user


def _signed_in(session: Session, user: StaffUser, address: str, now: datetime, *, mfa: bool) -> str:
    user.failed_sign_ins = 0
    if user.locked_at is not None:  # a lock that ran out
        user.locked_at = user.locked_until = None
    record_event(session, "user.signed_in", "staff_user", user.id, municipality_id=user.municipality_id,
                 actor=user.username, data={"username": user.username, "mfa": mfa})
    return open_session(session, user, address, complete=True, now=now)


def _fail(session: Session, user: StaffUser | None, address: str, reason: str, policy: SignInPolicy,
          now: datetime) -> None:
    """Record a failed sign-in (reason, never the password or the code); lock the user at the limit."""
    session.execute(delete(SignInFailure).where(SignInFailure.failed_at < now - FAILURES_KEPT))
    session.add(SignInFailure(address=address[:45], failed_at=now))
    if user is None:  # the name typed is not kept: it may be a password typed in the wrong field
        record_event(session, "user.sign_in_failed", "staff_user", "", municipality_id=None, actor="anonymous",
                     data={"reason": reason})
        return
    record_event(session, "user.sign_in_failed", "staff_user", user.id, municipality_id=user.municipality_id,
                 actor=user.username, data={"username": user.username, "reason": reason})
    if reason not in ("bad_password", "bad_code"):
        return
    user.failed_sign_ins = (user.failed_sign_ins or 0) + 1
    if user.failed_sign_ins >= policy.max_failures and not is_locked(user, now):
        user.locked_at = now
        user.locked_until = now + policy.lockout if policy.lockout is not None else None
        revoke_sessions_of(session, user.id, "locked", now)
        record_event(session, "user.locked", "staff_user", user.id, municipality_id=user.municipality_id,
                     actor=user.username, data={"username": user.username, "failures": user.failed_sign_ins,
                                                "until": user.locked_until.isoformat() if user.locked_until else None})
