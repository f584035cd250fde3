"""Sandbox mode only: the simulated providers' objects, shared by the processes on one database."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import UTCDateTime, utcnow
from gateway.models.base import Base


class SandboxObject(Base):
    """One object of a simulator (scope: the adapter's name; bucket: its kind), as JSON text.

    The row with an empty bucket and key is the scope's lock: each simulator operation
    updates it first, so two processes never change the same simulator at once.
    """

    __tablename__ = "sandbox_state"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
