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
    if len(password) < MIN_PASSWORD_LENGTH:
        raise GatewayError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", code="weak_password",
                           status=422)
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
