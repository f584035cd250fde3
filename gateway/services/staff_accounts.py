"""Staff accounts for the staff screens: created with a role, signed in by password."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.db import transaction
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.models import ROLES, Municipality, StaffUser
from gateway.services.events import record_event

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


def authenticate(session: Session, username: str, password: str) -> StaffUser | None:
    """The active user with this name and password, or None (the same answer for either mistake)."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username, StaffUser.active))
    if user is None:
        check_password_hash(generate_password_hash("timing"), password)  # same work either way
        return None
    return user if check_password_hash(user.password_hash, password) else None


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

    `municipality_id` limits the change to that municipality's staff (an administrator's screen).
    """
    _check_password(password)
    with transaction(session):
        query = select(StaffUser).where(StaffUser.username == username).with_for_update()
        if municipality_id is not None:
            query = query.where(StaffUser.municipality_id == municipality_id)
        user = session.scalar(query)
        if user is None:
            raise NotFound(f"there is no user {username!r}")
        user.password_hash = generate_password_hash(password)
        record_event(session, "user.password_set", "staff_user", user.id, municipality_id=user.municipality_id,
                     actor=actor, data={"username": username})
    return user


def staff_of(session: Session, municipality_id: int) -> list[StaffUser]:
    """The municipality's staff accounts, by name."""
    return list(session.scalars(select(StaffUser).where(StaffUser.municipality_id == municipality_id)
                                .order_by(StaffUser.username)))


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise GatewayError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", code="weak_password",
                           status=422)
