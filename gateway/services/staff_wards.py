"""The wards a staff account works in: its home ward, and for an administrator of the service, more.

A staff account belongs to one ward (staff_users.municipality_id). An administrator may be
granted others (staff_wards) and chooses, per signed-in session, the ward the staff screens
show (staff_sessions.municipality_id); every screen reads it through `ward_in_effect`, which
falls back to the home ward when the chosen one is no longer held. Every grant, revoke and
switch is an event in the chain of the ward it gives or takes.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.db import transaction, utcnow
from gateway.errors import Conflict, NotFound
from gateway.models import GRANTABLE_ROLE, Municipality, StaffSession, StaffUser, StaffWard, table
from gateway.services.events import record_event
from gateway.services.staff_sessions import token_id


@dataclass(frozen=True)
class Ward:
    """A ward a user may open the staff screens for."""

    id: int
    code: str
    name: str


@dataclass(frozen=True)
class StaffInfo:
    """A staff account as `kokin users list` shows it: its home ward and the wards it holds besides."""

    username: str
    role: str
    home: str
    wards: tuple[str, ...]
    active: bool


def grant_ward(session: Session, username: str, ward_code: str, *, actor: str) -> bool:
    """Let an administrator open the staff screens for another ward; False if they held it already.

    NotFound for an unknown user or ward; Conflict (`not_an_administrator`, `home_ward`) for a
    user of another role or the user's own ward. Safe to run twice: one grant, one event.
    """
    with transaction(session):
        user, ward = _user_and_ward(session, username, ward_code)
        if user.role != GRANTABLE_ROLE:
            raise Conflict(f"user {username} has role {user.role}: only an administrator may hold more than "
                           "the home ward", code="not_an_administrator")
        dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        granted = session.execute(dialect_insert(table(StaffWard)).values(
            user_id=user.id, municipality_id=ward.id, role=user.role, granted_by=actor[:100], granted_at=utcnow())
            .on_conflict_do_nothing().returning(table(StaffWard).c.user_id)).scalar()
        if granted is None:
            return False
        record_event(session, "user.ward_granted", "staff_user", user.id, municipality_id=ward.id, actor=actor,
                     data={"username": username, "ward": ward.code})
    return True


def revoke_ward(session: Session, username: str, ward_code: str, *, actor: str) -> bool:
    """Take a ward from an administrator; False if they did not hold it.

    Their sessions showing that ward fall back to the home ward at once. NotFound for an
    unknown user or ward; Conflict (`home_ward`) for the user's own ward.
    """
    with transaction(session):
        user, ward = _user_and_ward(session, username, ward_code)
        revoked = session.execute(delete(StaffWard).where(StaffWard.user_id == user.id,
                                                          StaffWard.municipality_id == ward.id))
        if not _rowcount(revoked):
            return False
        moved = session.execute(update(StaffSession).where(StaffSession.user_id == user.id,
                                                           StaffSession.municipality_id == ward.id)
                                .values(municipality_id=None))
        record_event(session, "user.ward_revoked", "staff_user", user.id, municipality_id=ward.id, actor=actor,
                     data={"username": username, "ward": ward.code, "sessions_moved_home": _rowcount(moved)})
    return True


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _user_and_ward(session: Session, username: str, ward_code: str) -> tuple[StaffUser, Ward]:
    """The user (locked: their role and grants change under it alone) and the ward, never the home ward."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username).with_for_update())
    if user is None:
        raise NotFound(f"there is no user {username!r}")
    found = session.execute(select(Municipality.id, Municipality.code, Municipality.name)
                            .where(Municipality.code == ward_code)).first()
    if found is None:
        raise NotFound(f"municipality {ward_code} is not configured")
    if found.id == user.municipality_id:
        raise Conflict(f"{ward_code} is the home ward of {username}: it is neither granted nor revoked",
                       code="home_ward")
    return user, Ward(found.id, found.code, found.name)


def wards_of(session: Session, user: StaffUser) -> list[Ward]:
    """The wards a user may open the staff screens for: the home ward first, then those held, by code."""
    held = select(StaffWard.municipality_id).where(StaffWard.user_id == user.id)
    rows = session.execute(select(Municipality.id, Municipality.code, Municipality.name)
                           .where((Municipality.id == user.municipality_id) | Municipality.id.in_(held))
                           .order_by(Municipality.id != user.municipality_id, Municipality.code)).all()
    return [Ward(row.id, row.code, row.name) for row in rows]


def ward_in_effect(session: Session, token: str, user: StaffUser) -> int:
    """The id of the ward the session of `token` shows: the one chosen if the user still holds it, else home."""
    if user.role != GRANTABLE_ROLE:
        return user.municipality_id  # no other role holds a second ward (the database refuses the grant)
    chosen = session.scalar(select(StaffSession.municipality_id)
                            .join(StaffWard, and_(StaffWard.user_id == StaffSession.user_id,
                                                  StaffWard.municipality_id == StaffSession.municipality_id))
                            .where(StaffSession.id == token_id(token), StaffSession.user_id == user.id))
    return user.municipality_id if chosen is None else chosen


def switch_ward(session: Session, token: str, user: StaffUser, ward_code: str) -> Ward:
    """Show another of the user's wards in the session of `token`; audited.

    NotFound for a ward the user does not hold (the same answer as a ward that does not
    exist): the session is left as it was.
    """
    ward = next((w for w in wards_of(session, user) if w.code == ward_code), None)
    if ward is None:
        raise NotFound(f"you hold no ward {ward_code!r}", code="ward_not_held")
    with transaction(session):
        chosen = None if ward.id == user.municipality_id else ward.id
        session.execute(update(StaffSession).where(StaffSession.id == token_id(token),
                                                   StaffSession.user_id == user.id)
                        .values(municipality_id=chosen))
        record_event(session, "user.ward_switched", "staff_user", user.id, municipality_id=ward.id,
                     actor=user.username, data={"username": user.username, "ward": ward.code})
    return ward


def list_staff(session: Session) -> list[StaffInfo]:
    """Every staff account, by name, with its home ward and the wards it holds besides."""
    held: dict[int, list[str]] = defaultdict(list)
    for user_id, code in session.execute(select(StaffWard.user_id, Municipality.code).join(Municipality)
                                         .order_by(Municipality.code)):
        held[user_id].append(code)
    rows = session.execute(select(StaffUser, Municipality.code).join(Municipality, Municipality.id ==
                                                                      StaffUser.municipality_id)
                           .order_by(StaffUser.username)).all()
    return [StaffInfo(user.username, user.role, code, tuple(held[user.id]), user.active) for user, code in rows]
