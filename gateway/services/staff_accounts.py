"""Staff accounts for the staff screens: created with a role; passwords, locks and authenticators.

Signing in is gateway.services.staff_sign_in; the sessions it opens, gateway.services.staff_sessions.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.db import transaction, utcnow
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.models import ROLES, Municipality, StaffUser
from gateway.services.events import record_event
from gateway.services.staff_sessions import revoke_sessions_of

MIN_PASSWORD_LENGTH = 10


def create_user(session: Session, municipality_code: str, username: str, role: str, password: str, *,
                counter_code: str | None = None, actor: str) -> StaffUser:
    """Create a staff account; the password is kept only as a salted hash."""
    if role not in ROLES:
        raise GatewayError(f"unknown role {role!r}; roles: {', '.join(ROLES)}", code="unknown_role", status=422)
    _check_password(password)
    municipality_id = session.scalar(select(Municipality.id).where(Municipality.code == municipality_code))
    if municipality_id is None:
        raise NotFound(f"municipality {municipality_code} is not configured")
    with transaction(session):
        user = StaffUser(municipality_id=municipality_id, username=username, role=role, counter_code=counter_code,
                         password_hash=generate_password_hash(password))
        session.add(user)
        try:
            session.flush()
        except IntegrityError as exc:
            raise Conflict(f"a user {username!r} exists already", code="user_exists") from exc
        record_event(session, "user.created", "staff_user", user.id, municipality_id=municipality_id, actor=actor,
                     data={"username": username, "role": role})
    return user


def user_differences(session: Session, username: str, municipality_code: str, role: str,
                     counter_code: str | None) -> list[str] | None:
    """How an existing account differs from the one asked for: None if there is none, [] if it is the same."""
    found = session.execute(select(StaffUser, Municipality.code).join(Municipality)
                            .where(StaffUser.username == username)).first()
    session.rollback()  # no transaction open while the command asks for a password
    if found is None:
        return None
    user, code = found
    asked = {"municipality": municipality_code, "role": role, "counter": counter_code}
    has = {"municipality": code, "role": user.role, "counter": user.counter_code}
    return [f"{name} {has[name]} (not {asked[name]})" for name in asked if has[name] != asked[name]]


def set_password(session: Session, username: str, password: str, *, actor: str,
                 municipality_id: int | None = None) -> StaffUser:
    """Give a staff account a new password; its event names who set it, never the password.

    Every session of the account is revoked: whoever held one signs in with the new password.

    `municipality_id` limits the change to that municipality's staff (an administrator's screen).
    """
    _check_password(password)
    with transaction(session):
        user = _user_for_update(session, username, municipality_id)
        user.password_hash = generate_password_hash(password)
        revoked = revoke_sessions_of(session, user.id, "password_reset", utcnow())
        record_event(session, "user.password_set", "staff_user", user.id, municipality_id=user.municipality_id,
                     actor=actor, data={"username": username, "sessions_revoked": revoked})
    return user


def change_password(session: Session, user_id: int, current: str, new: str, *, keep_session: str) -> None:
    """The user's own new password, given the current one; their other sessions are revoked.

    A wrong current password is refused (422) and audited; `keep_session` is the row id of the
    session asking, which stays signed in.
    """
    _check_password(new)
    with transaction(session):
        user = session.get(StaffUser, user_id, with_for_update=True, populate_existing=True)
        if user is None:
            raise NotFound("there is no such user")
        if not check_password_hash(user.password_hash, current):
            record_event(session, "user.password_change_refused", "staff_user", user.id,
                         municipality_id=user.municipality_id, actor=user.username,
                         data={"username": user.username, "reason": "bad_password"})
            refused = True
        else:
            refused = False
            user.password_hash = generate_password_hash(new)
            revoked = revoke_sessions_of(session, user.id, "password_changed", utcnow(), keep=keep_session)
            record_event(session, "user.password_changed", "staff_user", user.id,
                         municipality_id=user.municipality_id, actor=user.username,
                         data={"username": user.username, "sessions_revoked": revoked})
    if refused:
        raise GatewayError("the current password is not right", code="wrong_password", status=422)


def unlock_user(session: Session, username: str, *, actor: str, municipality_id: int | None = None) -> StaffUser:
    """Lift a user's sign-in lock and forget their failures; audited with who unlocked."""
    with transaction(session):
        user = _user_for_update(session, username, municipality_id)
        was_locked = user.locked_at is not None
        user.locked_at = user.locked_until = None
        user.failed_sign_ins = 0
        record_event(session, "user.unlocked", "staff_user", user.id, municipality_id=user.municipality_id,
                     actor=actor, data={"username": username, "was_locked": was_locked})
    return user


def reset_mfa(session: Session, username: str, *, actor: str, municipality_id: int | None = None) -> StaffUser:
    """Forget a user's authenticator (lost phone): they enrol a new one at their next sign-in.

    Their sessions are revoked, so the next request of any of them signs in again.
    """
    with transaction(session):
        user = _user_for_update(session, username, municipality_id)
        had = user.mfa_secret is not None
        user.mfa_secret = user.mfa_enrolled_at = user.mfa_last_step = None
        revoked = revoke_sessions_of(session, user.id, "mfa_reset", utcnow())
        record_event(session, "user.mfa_reset", "staff_user", user.id, municipality_id=user.municipality_id,
                     actor=actor, data={"username": username, "had_mfa": had, "sessions_revoked": revoked})
    return user


def _user_for_update(session: Session, username: str, municipality_id: int | None) -> StaffUser:
    query = select(StaffUser).where(StaffUser.username == username).with_for_update()
    if municipality_id is not None:
        query = query.where(StaffUser.municipality_id == municipality_id)
    user = session.scalar(query)
    if user is None:
        raise NotFound(f"there is no user {username!r}")
    return user


def staff_of(session: Session, municipality_id: int) -> list[StaffUser]:
    """The municipality's staff accounts, by name."""
    return list(session.scalars(select(StaffUser).where(StaffUser.municipality_id == municipality_id)
                                .order_by(StaffUser.username)))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise GatewayError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", code="weak_password",
                           status=422)
