"""Staff sign-in state kept in the database (several instances share it): sessions and failures."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base


class StaffSession(Base):
    """A signed-in browser: the cookie carries a random token, only its SHA-256 is kept here.

    `complete` is False between the password and the second factor (or the enrolment of one);
    `enrol_secret` is the TOTP secret being enrolled, encrypted, until a code confirms it.
    A revoked session (logout, idle, lifetime, password reset, lock) is refused for ever.
    `municipality_id` is the ward an administrator holding several chose in this session
    (None: their home ward); the screens show it only while the user still holds it.
    """

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
    enrol_secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # minutes long: not rotated, enrol again
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(20))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))


class SignInFailure(Base):
    """One failed sign-in from an address, for throttling per address; rows older than a day go."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_address_failed_at", "address", "failed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(45))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
